"""The inbox shows a conversation's files through short-lived signed links."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import psycopg
import pytest
from fastapi.testclient import TestClient

from clawdesk.gateway import create_app
from clawdesk.settings import AppSettings
from clawdesk.storage import apikeys, attachments
from tests.fakes import media

from .fakes import FakeConsumer, FakeProducer
from .test_inbox import seed

PHOTO = media.png()
STORED = "att-" + "a" * 32
REFUSED = "att-" + "b" * 32


@dataclass
class Inbox:
    client: TestClient
    key: str

    def get(self, path: str):
        return self.client.get(path, headers={"Authorization": f"Bearer {self.key}"})


def seed_files(url: str, settings: AppSettings) -> None:
    """A stored photo and a refused file on the customer's last message (m2)."""
    key = f"demo/2026/03/02/{STORED}.png"
    asyncio.run(attachments.store_for(settings).put(key, PHOTO, "image/png"))
    with psycopg.connect(url) as conn:
        for att_id, object_key, content_type, refused in (
            (STORED, key, "image/png", None),
            (REFUSED, None, None, "too_large"),
        ):
            conn.execute(
                "INSERT INTO attachments (id, message_id, conversation_id, tenant_id, channel,"
                " kind, provider_ref, object_key, content_type, size_bytes, refused)"
                " VALUES (%s, 'm2', 'conv-human', 'demo', 'whatsapp', 'image', %s, %s, %s, %s, %s)",
                (att_id, f"ref-{att_id}", object_key, content_type, len(PHOTO), refused),
            )


@pytest.fixture
def inbox_app(database_url: str, tmp_path: Path) -> Iterator[Inbox]:
    seed(database_url)
    settings = AppSettings(
        _env_file=None,  # type: ignore[call-arg]
        topic_prefix="test",
        data_dir=tmp_path,
        attachment_url_ttl_s=60,
    )
    seed_files(database_url, settings)
    key = apikeys.create_key(database_url, "demo", "alice")
    app = create_app(
        settings,
        bootstrap_servers="unused:9092",
        database_url=database_url,
        producer=FakeProducer(),
        reply_consumer=FakeConsumer(),
    )
    with TestClient(app) as client:
        yield Inbox(client, key)


def files_of(inbox: Inbox) -> list[dict]:
    detail = inbox.get("/api/inbox/conversations/conv-human").json()
    (last,) = [m for m in detail["messages"] if m["id"] == "m2"]
    assert all(not m["attachments"] for m in detail["messages"] if m["id"] != "m2")
    return last["attachments"]


def test_the_conversation_lists_its_files_with_a_link_only_for_stored_ones(
    inbox_app: Inbox,
) -> None:
    stored, refused = files_of(inbox_app)

    assert (stored["id"], stored["content_type"], stored["refused"]) == (STORED, "image/png", None)
    assert stored["url"].startswith(f"/api/attachments/{STORED}?expires=")
    assert (refused["url"], refused["refused"]) == (None, "too_large")


def test_a_signed_link_serves_the_file_with_its_sniffed_type(inbox_app: Inbox) -> None:
    stored, _ = files_of(inbox_app)

    response = inbox_app.client.get(stored["url"])  # no bearer token: the link is enough

    assert response.status_code == 200
    assert response.content == PHOTO
    assert response.headers["content-type"] == "image/png"
    assert response.headers["x-content-type-options"] == "nosniff"
    assert "sandbox" in response.headers["content-security-policy"]


def test_a_forged_or_expired_link_is_refused(inbox_app: Inbox) -> None:
    stored, _ = files_of(inbox_app)
    query = parse_qs(urlsplit(stored["url"]).query)
    expires, signature = query["expires"][0], query["signature"][0]
    forged = "0" * 64
    other = f"/api/attachments/{REFUSED}?expires={expires}&signature={signature}"
    stale = f"/api/attachments/{STORED}?expires=1700000000&signature={signature}"

    for path in (f"/api/attachments/{STORED}?expires={expires}&signature={forged}", other, stale):
        response = inbox_app.client.get(path)
        assert response.status_code == 403, path
    assert inbox_app.client.get(f"/api/attachments/{STORED}").status_code == 422
