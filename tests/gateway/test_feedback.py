"""`POST /api/web/conversations/{id}/replies/{reply_id}/feedback` against real Postgres,
and the widget's "did this help?" buttons."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime

import psycopg
import pytest
from fastapi.testclient import TestClient
from prometheus_client import REGISTRY

from clawdesk.gateway import create_app
from clawdesk.settings import AppSettings

from .conftest import TOKEN_SECRET, auth
from .fakes import FakeConsumer, FakeProducer

CONV = "web-0123456789abcdef0123456789abcdef"
OTHER = "web-fedcba9876543210fedcba9876543210"


def seed(url: str) -> None:
    """A bot reply and a human agent's reply in CONV, a bot reply in OTHER."""
    at = datetime(2026, 3, 2, 9, 0, tzinfo=UTC)
    with psycopg.connect(url) as conn:
        for conv in (CONV, OTHER):
            conn.execute(
                "INSERT INTO conversations (id, tenant_id, channel, customer_id)"
                " VALUES (%s, 'demo', 'web', %s)",
                (conv, conv),
            )
        for message_id, conv, author in (
            ("r-bot", CONV, "bot"),
            ("r-agent", CONV, "agent"),
            ("r-other", OTHER, "bot"),
        ):
            conn.execute(
                "INSERT INTO messages (id, conversation_id, tenant_id, user_id, direction, author,"
                " channel, text, \"timestamp\") VALUES (%s, %s, 'demo', %s, 'out', %s, 'web',"
                " 'Delivery takes 5-8 business days.', %s)",
                (message_id, conv, conv, author, at),
            )


@pytest.fixture
def client(database_url: str) -> Iterator[TestClient]:
    seed(database_url)
    settings = AppSettings(
        _env_file=None,  # type: ignore[call-arg]
        topic_prefix="test",
        default_tenant="demo",
        web_token_secret=TOKEN_SECRET,  # type: ignore[arg-type]
    )
    app = create_app(
        settings,
        bootstrap_servers="unused:9092",
        database_url=database_url,
        producer=FakeProducer(),
        reply_consumer=FakeConsumer(),
        redrive=False,
    )
    with TestClient(app) as client:
        yield client


def url(reply_id: str, conversation: str = CONV) -> str:
    return f"/api/web/conversations/{conversation}/replies/{reply_id}/feedback"


def stored(database_url: str) -> list[tuple[str, str, str, bool, bool]]:
    with psycopg.connect(database_url) as conn:
        return conn.execute(
            "SELECT reply_id, conversation_id, tenant_id, helpful, updated_at > created_at"
            " FROM reply_feedback"
        ).fetchall()


def votes(helpful: str) -> float:
    labels = {"tenant": "demo", "helpful": helpful}
    return REGISTRY.get_sample_value("clawdesk_reply_feedback_total", labels) or 0.0


def test_a_second_vote_replaces_the_first_and_each_change_is_counted(
    client: TestClient, database_url: str
) -> None:
    yes, no = votes("true"), votes("false")

    first = client.post(url("r-bot"), json={"helpful": True}, headers=auth(CONV))
    again = client.post(url("r-bot"), json={"helpful": True}, headers=auth(CONV))
    changed = client.post(url("r-bot"), json={"helpful": False}, headers=auth(CONV))

    assert first.status_code == again.status_code == changed.status_code == 200
    assert changed.json() == {"reply_id": "r-bot", "helpful": False}
    assert stored(database_url) == [("r-bot", CONV, "demo", False, True)]
    # The same click twice (a retry) is one vote; changing one's mind is a new one.
    assert (votes("true"), votes("false")) == (yes + 1, no + 1)


@pytest.mark.parametrize(
    ("headers", "status"),
    [({}, 401), (auth(OTHER), 403), ({"Authorization": "Bearer v1.forged.demo"}, 403)],
)
def test_feedback_needs_the_conversations_token(
    client: TestClient, database_url: str, headers: dict[str, str], status: int
) -> None:
    response = client.post(url("r-bot"), json={"helpful": True}, headers=headers)

    assert response.status_code == status
    assert stored(database_url) == []


@pytest.mark.parametrize("reply_id", ["r-missing", "r-other", "r-agent"])
def test_feedback_on_a_reply_that_is_not_a_bot_reply_of_the_conversation_is_404(
    client: TestClient, database_url: str, reply_id: str
) -> None:
    response = client.post(url(reply_id), json={"helpful": True}, headers=auth(CONV))

    assert response.status_code == 404
    assert response.json()["error"] == "unknown reply"
    assert stored(database_url) == []


@pytest.mark.parametrize("body", [{"helpful": "yes"}, {"helpful": 1}, {}])
def test_feedback_is_true_or_false(client: TestClient, body: dict[str, object]) -> None:
    assert client.post(url("r-bot"), json=body, headers=auth(CONV)).status_code == 422


def test_the_widget_offers_feedback_under_bot_answers_only(client: TestClient) -> None:
    script = client.get("/web/widget.js").text
    page = client.get("/").text

    assert '"/replies/" + encodeURIComponent(replyId) + "/feedback"' in script
    assert "JSON.stringify({ helpful: helpful })" in script
    assert 'msg.author === "bot" && msg.id && !msg.handoff' in script
    assert script.count('setAttribute("aria-label"') >= 2  # the group and each button
    assert "helpfulYes" in script and "sr-only" in script
    assert ".sr-only" in page and ".feedback-button" in page
