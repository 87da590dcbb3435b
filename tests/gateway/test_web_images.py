"""A web customer's image: checked like every channel's files, stored, recorded in the
inbound log and enqueued; a refused one leaves nothing behind (real Postgres)."""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import psycopg
import pytest
from fastapi.testclient import TestClient
from prometheus_client import REGISTRY

from clawdesk.gateway import create_app
from clawdesk.settings import AppSettings
from schemas import InboundMessage, MessageKind
from tests.fakes import media

from .conftest import TOKEN_SECRET, TOKENS
from .fakes import FakeConsumer, FakeProducer

PHOTO = media.png()
URL = "/api/web/images"


@dataclass
class Site:
    client: TestClient
    producer: FakeProducer
    database_url: str
    store: Path

    def rows(self, table: str) -> int:
        with psycopg.connect(self.database_url) as conn:
            row = conn.execute(f"SELECT count(*) FROM {table}").fetchone()
        assert row is not None
        return int(row[0])

    def stored_files(self) -> list[Path]:
        return [p for p in self.store.rglob("*") if p.is_file()] if self.store.exists() else []


@pytest.fixture
def site(database_url: str, tmp_path: Path, request: pytest.FixtureRequest) -> Iterator[Site]:
    extra = getattr(request, "param", {})  # further settings, by indirect parametrize
    settings = AppSettings(
        _env_file=None,  # type: ignore[call-arg]
        topic_prefix="test",
        default_tenant="demo",
        data_dir=tmp_path,
        web_token_secret=TOKEN_SECRET,  # type: ignore[arg-type]
        attachment_max_bytes=2048,
        **extra,
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
    app.state.rate_limiter = None
    with TestClient(app) as client:
        yield Site(client, producer, database_url, tmp_path / "attachments")


def post_image(
    site: Site,
    data: bytes,
    *,
    caption: str = "",
    conversation: str | None = "web-c1",
    token: str | None = None,
    name: str = "photo.png",
    declared: str = "image/png",
):
    fields = {"client_message_id": "cm-1", "caption": caption}
    headers = {}
    if conversation:
        fields["conversation_id"] = conversation
        headers["Authorization"] = f"Bearer {token or TOKENS.issue('demo', conversation)}"
    return site.client.post(
        URL, data=fields, files={"file": (name, data, declared)}, headers=headers
    )


def refused_count(outcome: str) -> float:
    value = REGISTRY.get_sample_value(
        "clawdesk_attachments_total", {"channel": "web", "kind": "image", "outcome": outcome}
    )
    return value or 0.0


def enqueued(site: Site) -> list[InboundMessage]:
    return [InboundMessage.from_bytes(s.value) for s in site.producer.sent if s.value]


def test_an_image_with_a_caption_is_stored_logged_and_enqueued(site: Site) -> None:
    answer = post_image(site, PHOTO, caption="  Is this the right charger? ")

    assert answer.status_code == 202, answer.text
    (msg,) = enqueued(site)
    assert msg.event_id == answer.json()["event_id"]
    assert msg.text == "Is this the right charger?" and msg.kind is MessageKind.TEXT
    (att,) = msg.attachments
    assert att.kind == "image" and att.content_type == "image/png" and att.size_bytes == len(PHOTO)
    (file,) = site.stored_files()
    assert file.read_bytes() == PHOTO and str(file).endswith(att.object_key or "-")
    assert site.rows("attachments") == 1 and site.rows("inbound_log") == 1


def test_an_image_alone_is_a_media_message_and_opens_a_conversation(site: Site) -> None:
    answer = post_image(site, PHOTO, conversation=None)

    assert answer.status_code == 202, answer.text
    (msg,) = enqueued(site)
    assert msg.kind is MessageKind.MEDIA and msg.text == ""
    assert msg.conversation_id == answer.json()["conversation_id"]
    assert TOKENS.verify(answer.json()["token"], msg.conversation_id) is not None


def test_the_history_shows_the_image_through_a_signed_link(site: Site) -> None:
    answer = post_image(site, PHOTO, caption="look")
    event_id = answer.json()["event_id"]
    with psycopg.connect(site.database_url) as conn:  # as ingest stores the message
        conn.execute(
            "INSERT INTO messages (id, conversation_id, tenant_id, user_id, direction, author,"
            " channel, text, \"timestamp\") VALUES (%s, 'web-c1', 'demo', 'web-c1',"
            " 'in', 'customer', 'web', 'look', now())",
            (event_id,),
        )
    history = site.client.get(
        "/api/web/conversations/web-c1/messages",
        headers={"Authorization": f"Bearer {TOKENS.issue('demo', 'web-c1')}"},
    ).json()

    (item,) = history
    (image,) = item["images"]
    fetched = site.client.get(image["url"])
    assert fetched.status_code == 200 and fetched.content == PHOTO


def test_an_oversized_image_is_413_and_nothing_is_kept(site: Site) -> None:
    before = refused_count("too_large")
    big = PHOTO + b"\0" * 4096

    answer = post_image(site, big)

    assert answer.status_code == 413
    assert answer.json() == {
        "error": "the image is too large (the limit is 2 KB)",
        "code": "too_large",
    }
    assert refused_count("too_large") == before + 1
    assert enqueued(site) == [] and site.stored_files() == []
    assert site.rows("attachments") == 0 and site.rows("inbound_log") == 0


def test_a_file_dressed_as_an_image_is_415_and_nothing_is_kept(site: Site) -> None:
    before = refused_count("type_not_allowed")
    script = b"#!/bin/sh\necho not a picture\n"

    answer = post_image(site, script, name="cat.png", declared="image/png")

    assert answer.status_code == 415
    assert answer.json()["code"] == "type_not_allowed"
    assert "only images" in answer.json()["error"]
    assert refused_count("type_not_allowed") == before + 1
    assert enqueued(site) == [] and site.stored_files() == []
    assert site.rows("attachments") == 0 and site.rows("inbound_log") == 0


def test_a_pdf_is_not_an_image(site: Site) -> None:
    answer = post_image(site, b"%PDF-1.4\n%\xe2\xe3\xcf\xd3\n", name="x.png")
    assert answer.status_code == 415


@pytest.mark.parametrize("token", ["", "not-a-token", TOKENS.issue("demo", "web-other")])
def test_an_image_to_a_conversation_needs_its_token(site: Site, token: str) -> None:
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    answer = site.client.post(
        URL,
        data={"client_message_id": "cm-1", "conversation_id": "web-c1"},
        files={"file": ("p.png", PHOTO, "image/png")},
        headers=headers,
    )

    assert answer.status_code == (401 if not token else 403)
    assert enqueued(site) == [] and site.stored_files() == []
    assert site.rows("attachments") == 0


@pytest.mark.parametrize("site", [{"max_backlog": 1}], indirect=True)
def test_an_image_the_log_cannot_take_is_not_kept(site: Site) -> None:
    state = site.client.app.state.gateway  # type: ignore[attr-defined]
    state.backlog.open_messages = 5  # over the bound: the message is refused (503)

    answer = post_image(site, PHOTO)

    assert answer.status_code == 503
    assert json.loads(answer.text)["code"] == "overloaded"
    assert enqueued(site) == [] and site.stored_files() == []
    assert site.rows("attachments") == 0


def test_invalid_form_fields_are_422_and_nothing_is_kept(site: Site) -> None:
    answer = site.client.post(
        URL,
        data={"client_message_id": "cm-1", "tenant_id": "no spaces allowed"},
        files={"file": ("p.png", PHOTO, "image/png")},
    )

    assert answer.status_code == 422
    assert "tenant_id" in answer.json()["error"]
    assert enqueued(site) == [] and site.stored_files() == []


def test_a_body_far_past_the_cap_is_cut_off_before_the_route_reads_it(site: Site) -> None:
    # Past the cap plus the form's overhead: refused by the body limit while streaming
    # (even without a declared length), with the same message the widget shows.
    huge = PHOTO + b"\0" * (64 * 1024)

    def chunks():
        yield b'--b\r\nContent-Disposition: form-data; name="file"; filename="p.png"\r\n'
        yield b"Content-Type: image/png\r\n\r\n"
        for i in range(0, len(huge), 4096):
            yield huge[i : i + 4096]
        yield b"\r\n--b--\r\n"

    answer = site.client.post(
        URL,
        content=chunks(),
        headers={"Content-Type": "multipart/form-data; boundary=b"},
    )

    assert answer.status_code == 413
    assert answer.json() == {"error": "the image is too large (the limit is 2 KB)"}
    assert enqueued(site) == [] and site.stored_files() == []
