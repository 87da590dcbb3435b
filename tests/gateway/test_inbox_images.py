"""An agent sends an image from the inbox: checked, stored, put on the replies topic
with the reply, then delivered by the channel's media send (or as a link where the
channel sends no files). Real Postgres; the broker is the recording fake."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit

import psycopg
import pytest
from fastapi.testclient import TestClient

from clawdesk.gateway import create_app
from clawdesk.settings import AppSettings
from clawdesk.storage import ObjectStore, apikeys, attachments, outgoing
from connectors import registry, whatsapp
from schemas import Channel, Reply
from tests.connectors import echo_channel
from tests.connectors.conftest import WHATSAPP_TOKEN, make_channels
from tests.fakes import media
from tests.fakes.channels.server import serve
from tests.fakes.channels.whatsapp import FakeGraphApi

from .conftest import TOKEN_SECRET
from .fakes import FakeConsumer, FakeProducer
from .test_inbox import seed

PHOTO = media.png()


@dataclass
class Inbox:
    client: TestClient
    producer: FakeProducer
    database_url: str
    key: str
    settings: AppSettings

    def send_image(self, data: bytes = PHOTO, caption: str = "Here is your label", **extra: str):
        fields = {"conversation_id": "conv-human", "client_message_id": "c1", "caption": caption}
        return self.client.post(
            "/api/inbox/images",
            data={**fields, **extra},
            files={"file": ("label.png", data, "image/png")},
            headers={"Authorization": f"Bearer {self.key}"},
        )

    def replies(self) -> list[Reply]:
        return [
            Reply.from_bytes(s.value or b"") for s in self.producer.sent if "replies" in s.topic
        ]

    def files(self) -> list[Path]:
        root = self.settings.data_dir / "attachments"
        return [p for p in root.rglob("*") if p.is_file()] if root.exists() else []


@pytest.fixture
def inbox(database_url: str, tmp_path: Path) -> Iterator[Inbox]:
    seed(database_url)
    key = apikeys.create_key(database_url, "demo", "alice")
    settings = AppSettings(
        _env_file=None,  # type: ignore[call-arg]
        topic_prefix="test",
        data_dir=tmp_path,
        web_token_secret=TOKEN_SECRET,  # type: ignore[arg-type]
        attachment_max_bytes=4096,
        public_url="https://chat.example.com",
    )
    producer = FakeProducer()
    app = create_app(
        settings,
        bootstrap_servers="unused:9092",
        database_url=database_url,
        producer=producer,
        reply_consumer=FakeConsumer(),
        redrive=False,
    )
    with TestClient(app) as client:
        yield Inbox(client, producer, database_url, key, settings)


def test_an_agents_image_is_stored_and_sent_with_the_reply(inbox: Inbox) -> None:
    answer = inbox.send_image()

    assert answer.status_code == 202, answer.text
    (reply,) = inbox.replies()
    assert reply.reply_id == answer.json()["reply_id"] and reply.author == "agent"
    assert reply.text == "Here is your label"
    (att,) = reply.attachments
    assert att.content_type == "image/png" and att.size_bytes == len(PHOTO)
    (file,) = inbox.files()
    assert file.read_bytes() == PHOTO
    # The inbox shows the agent's message with its image, through a signed link.
    detail = inbox.client.get(
        "/api/inbox/conversations/conv-human", headers={"Authorization": f"Bearer {inbox.key}"}
    ).json()
    (mine,) = [m for m in detail["messages"] if m["id"] == reply.reply_id]
    (shown,) = mine["attachments"]
    assert inbox.client.get(shown["url"]).content == PHOTO


def test_a_retried_image_is_sent_once(inbox: Inbox) -> None:
    first, again = inbox.send_image(), inbox.send_image()
    assert first.json() == again.json()
    assert len(inbox.files()) == 1
    with psycopg.connect(inbox.database_url) as conn:
        row = conn.execute("SELECT count(*) FROM attachments").fetchone()
    assert row == (1,)


@pytest.mark.parametrize(
    ("data", "status"),
    [(b"<html><script>alert(1)</script></html>", 415), (PHOTO + b"\0" * 8192, 413)],
)
def test_a_refused_image_sends_and_keeps_nothing(inbox: Inbox, data: bytes, status: int) -> None:
    answer = inbox.send_image(data)
    assert answer.status_code == status, answer.text
    assert inbox.producer.sent == [] and inbox.files() == []


def test_an_image_the_broker_refuses_is_not_kept(inbox: Inbox) -> None:
    inbox.producer.fail = True
    assert inbox.send_image().status_code == 503
    assert inbox.files() == []
    with psycopg.connect(inbox.database_url) as conn:
        assert conn.execute("SELECT count(*) FROM attachments").fetchone() == (0,)


def test_an_image_needs_a_signed_in_agent(inbox: Inbox) -> None:
    answer = inbox.client.post(
        "/api/inbox/images",
        data={"conversation_id": "conv-human", "client_message_id": "c1"},
        files={"file": ("label.png", PHOTO, "image/png")},
    )
    assert answer.status_code == 401
    assert inbox.files() == []


def test_an_image_to_a_bot_conversation_is_409(inbox: Inbox) -> None:
    assert inbox.send_image(conversation_id="conv-bot").status_code == 409
    assert inbox.files() == []


async def test_the_dispatcher_sends_the_stored_image_by_whatsapps_media_send(
    inbox: Inbox,
) -> None:
    inbox.send_image()
    (reply,) = inbox.replies()
    fake = FakeGraphApi(WHATSAPP_TOKEN)
    with serve(fake.app) as base:
        files = await outgoing.load_files(reply, _store(inbox), inbox.settings)
        await whatsapp.send_media(reply, files, settings=make_channels(whatsapp_api_base=base))

    (upload,) = fake.uploads
    assert upload["file"] == PHOTO
    (sent,) = fake.sent
    assert sent.path.endswith("/messages") and sent.json["image"]["id"] == upload["id"]


async def test_a_channel_without_media_send_gets_a_signed_link_as_text(inbox: Inbox) -> None:
    inbox.send_image()
    (reply,) = inbox.replies()
    registry.register(echo_channel.CHANNEL)
    echo_channel.SENT.clear()
    try:
        as_echo = reply.model_copy(update={"channel": Channel("echo")})
        await outgoing.send_reply(as_echo, inbox.settings)
    finally:
        registry.unregister("echo")

    (sent,) = echo_channel.SENT
    caption, link = sent.text.split("\n\n")
    assert caption == "Here is your label" and sent.attachments == []
    assert link.startswith("https://chat.example.com/api/attachments/att-")
    path = urlsplit(link)
    assert inbox.client.get(f"{path.path}?{path.query}").content == PHOTO


def _store(inbox: Inbox) -> ObjectStore:
    return attachments.store_for(inbox.settings)
