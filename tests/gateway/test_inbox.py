"""The agent inbox API against real Postgres; the Kafka producer is the recording fake."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import psycopg
import pytest
from fastapi.testclient import TestClient
from psycopg.types.json import Jsonb

from clawdesk.gateway import create_app
from clawdesk.handoff import inbox
from clawdesk.settings import AppSettings, ChannelSettings, WhatsAppTemplate
from clawdesk.storage import apikeys, db
from schemas import ControlAction, ConversationControl, DeliveryStatus, Reply

from .fakes import FakeConsumer, FakeProducer

T0 = datetime(2026, 3, 2, 9, 0, tzinfo=UTC)


@dataclass
class Inbox:
    client: TestClient
    producer: FakeProducer
    database_url: str
    key: str

    def headers(self, key: str | None = None) -> dict[str, str]:
        return {"Authorization": f"Bearer {key or self.key}"}

    def get(self, path: str, key: str | None = None):
        return self.client.get(path, headers=self.headers(key))

    def post(self, path: str, body: dict | None = None):
        return self.client.post(path, json=body, headers=self.headers())


def seed(url: str) -> None:
    """Tenants demo and acme; conversations owned by a human, by the bot, and acme's."""
    with psycopg.connect(url) as conn:
        conn.execute("INSERT INTO tenants (id, name) VALUES ('acme', 'Acme')")
        for conv, tenant, channel, status, meta in (
            ("conv-human", "demo", "whatsapp", "human", {"phone_number_id": "1069"}),
            ("conv-bot", "demo", "web", "bot", {}),
            ("conv-acme", "acme", "web", "human", {}),
        ):
            conn.execute(
                "INSERT INTO conversations (id, tenant_id, channel, customer_id, language, status,"
                " reply_metadata) VALUES (%s, %s, %s, %s, 'en', %s, %s)",
                (conv, tenant, channel, f"{conv}-customer", status, Jsonb(meta)),
            )
        for n, (author, text) in enumerate(
            [
                ("customer", "Where is my refund?"),
                ("bot", "Refunds take 5-7 days."),
                ("customer", "I want to talk to a human"),
            ]
        ):
            conn.execute(
                "INSERT INTO messages (id, conversation_id, tenant_id, user_id, direction, author,"
                ' channel, text, "timestamp") VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s)',
                (
                    f"m{n}",
                    "conv-human",
                    "demo",
                    "conv-human-customer",
                    "in" if author == "customer" else "out",
                    author,
                    "whatsapp",
                    text,
                    T0 + timedelta(minutes=n),
                ),
            )
        conn.execute(
            "INSERT INTO deliveries (reply_id, conversation_id, tenant_id, channel, status)"
            " VALUES ('m1', 'conv-human', 'demo', 'whatsapp', 'delivered')"
        )
        conn.execute(
            "INSERT INTO handoff_tickets (event_id, conversation_id, tenant_id, channel,"
            " customer_id, reason, handed_off_at, status, attempts, last_error)"
            " VALUES ('h1', 'conv-human', 'demo', 'whatsapp', 'conv-human-customer',"
            " 'customer_request', %s, 'pending', 2, 'ServerError: zendesk 503')",
            (T0 + timedelta(minutes=2),),
        )


@pytest.fixture
def inbox_app(database_url: str) -> Iterator[Inbox]:
    seed(database_url)
    key = apikeys.create_key(database_url, "demo", "alice")
    producer = FakeProducer()
    settings = AppSettings(_env_file=None, topic_prefix="test")  # type: ignore[call-arg]
    app = create_app(
        settings,
        bootstrap_servers="unused:9092",
        database_url=database_url,
        producer=producer,
        reply_consumer=FakeConsumer(),
    )
    with TestClient(app) as client:
        yield Inbox(client, producer, database_url, key)


def agent_messages(url: str, conversation: str) -> list[tuple[str, str, str]]:
    with psycopg.connect(url) as conn:
        return conn.execute(
            "SELECT id, author, text FROM messages WHERE conversation_id = %s AND author = 'agent'",
            (conversation,),
        ).fetchall()


def test_the_inbox_page_is_served_with_its_script_and_a_csp(inbox_app: Inbox) -> None:
    page = inbox_app.client.get("/inbox")
    assert page.status_code == 200
    assert '<script src="/web/inbox.js"' in page.text
    assert "script-src 'self'" in page.headers["content-security-policy"]
    assert inbox_app.client.get("/web/inbox.js").status_code == 200


@pytest.mark.parametrize(
    "authorization",
    [None, "Basic YWxpY2U6cHc=", "Bearer ", "Bearer cdk_not-a-real-key", "Bearer nonsense"],
)
def test_requests_without_a_valid_key_are_refused(inbox_app: Inbox, authorization) -> None:
    headers = {"Authorization": authorization} if authorization else {}
    response = inbox_app.client.get("/api/inbox/conversations", headers=headers)
    assert response.status_code == 401
    assert response.headers["www-authenticate"].startswith("Bearer")
    assert "error" in response.json()


def test_a_revoked_key_no_longer_signs_in(inbox_app: Inbox) -> None:
    assert inbox_app.get("/api/inbox/me").json() == {"tenant_id": "demo", "agent": "alice"}
    assert apikeys.revoke_keys(inbox_app.database_url, "demo", "alice") == 1
    assert inbox_app.get("/api/inbox/me").status_code == 401


def test_only_the_tenants_conversations_a_human_owns_are_listed(inbox_app: Inbox) -> None:
    listed = inbox_app.get("/api/inbox/conversations").json()

    assert [c["id"] for c in listed] == ["conv-human"]
    conversation = listed[0]
    assert conversation["channel"] == "whatsapp"
    assert conversation["last_message"]["text"] == "I want to talk to a human"
    assert conversation["ticket"]["status"] == "pending"
    assert conversation["ticket"]["attempts"] == 2
    assert "503" in conversation["ticket"]["last_error"]

    acme_key = apikeys.create_key(inbox_app.database_url, "acme", "bob")
    acme = inbox_app.get("/api/inbox/conversations", key=acme_key).json()
    assert [c["id"] for c in acme] == ["conv-acme"]


def test_a_conversation_comes_with_its_history_and_delivery_status(inbox_app: Inbox) -> None:
    detail = inbox_app.get("/api/inbox/conversations/conv-human").json()

    assert detail["status"] == "human"
    assert [(m["author"], m["text"]) for m in detail["messages"]] == [
        ("customer", "Where is my refund?"),
        ("bot", "Refunds take 5-7 days."),
        ("customer", "I want to talk to a human"),
    ]
    assert detail["messages"][1]["delivery"] == "delivered"
    # Another tenant's conversation is indistinguishable from a missing one.
    assert inbox_app.get("/api/inbox/conversations/conv-acme").status_code == 404
    assert inbox_app.get("/api/inbox/conversations/nope").status_code == 404


def test_an_agent_reply_is_stored_once_and_sent_through_the_customers_channel(
    inbox_app: Inbox,
) -> None:
    body = {"text": "  Hi, I'm Alice. Your refund went out today.  ", "client_message_id": "c1"}

    first = inbox_app.post("/api/inbox/conversations/conv-human/replies", body)
    again = inbox_app.post("/api/inbox/conversations/conv-human/replies", body)  # a retry

    assert first.status_code == again.status_code == 202
    assert first.json() == again.json()
    stored = agent_messages(inbox_app.database_url, "conv-human")
    assert stored == [
        (first.json()["reply_id"], "agent", "Hi, I'm Alice. Your refund went out today.")
    ]
    sent = inbox_app.producer.sent
    assert [(s.topic, s.key) for s in sent] == [
        ("test.replies", b"conv-human"),
        ("test.control", b"conv-human"),
    ] * 2
    reply = Reply.from_bytes(sent[0].value or b"")
    # The reply also goes to the conversation memory, as the agent's turn; both posts
    # carry the same event id, so the worker remembers it once.
    turns = [ConversationControl.from_bytes(s.value or b"") for s in (sent[1], sent[3])]
    assert turns[0].event_id == turns[1].event_id == reply.reply_id
    assert (turns[0].action, turns[0].agent_id, turns[0].text) == (
        ControlAction.AGENT_REPLY,
        "alice",
        "Hi, I'm Alice. Your refund went out today.",
    )
    assert reply.reply_id == first.json()["reply_id"]
    assert (reply.author, reply.channel.value, reply.customer_id) == (
        "agent",
        "whatsapp",
        "conv-human-customer",
    )
    assert reply.metadata == {"phone_number_id": "1069"}  # how WhatsApp reaches them
    assert reply.in_reply_to == "m2"
    assert reply.text == "Hi, I'm Alice. Your refund went out today."


def _customer_wrote(url: str, hours_ago: float) -> None:
    wrote = datetime.now(UTC) - timedelta(hours=hours_ago)
    with psycopg.connect(url) as conn:
        conn.execute(
            "UPDATE conversations SET reply_metadata = %s WHERE id = 'conv-human'",
            (Jsonb({"phone_number_id": "1069", "whatsapp_customer_at": wrote.isoformat()}),),
        )


def test_a_reply_outside_whatsapps_window_is_refused_with_a_clear_error(
    inbox_app: Inbox,
) -> None:
    _customer_wrote(inbox_app.database_url, hours_ago=25)
    body = {"text": "Your refund went out today.", "client_message_id": "late-1"}

    response = inbox_app.post("/api/inbox/conversations/conv-human/replies", body)

    assert response.status_code == 409
    assert "24 hours" in response.json()["error"]
    assert "CLAWDESK_WHATSAPP_TEMPLATE" in response.json()["error"]
    assert agent_messages(inbox_app.database_url, "conv-human") == []
    assert inbox_app.producer.sent == []


def test_a_reply_outside_the_window_goes_when_a_template_is_configured(
    inbox_app: Inbox,
) -> None:
    _customer_wrote(inbox_app.database_url, hours_ago=25)
    inbox_app.client.app.state.channel_settings = ChannelSettings(  # type: ignore[attr-defined]
        _env_file=None,  # type: ignore[call-arg]
        whatsapp_template=WhatsAppTemplate(name="follow_up", parameters=["{text}"]),
    )
    body = {"text": "Your refund went out today.", "client_message_id": "late-2"}

    response = inbox_app.post("/api/inbox/conversations/conv-human/replies", body)

    assert response.status_code == 202  # the dispatcher sends it as the template


def test_a_reply_inside_the_window_goes_as_it_is(
    inbox_app: Inbox,
) -> None:
    _customer_wrote(inbox_app.database_url, hours_ago=23)
    body = {"text": "Your refund went out today.", "client_message_id": "in-1"}

    assert inbox_app.post("/api/inbox/conversations/conv-human/replies", body).status_code == 202


def test_a_reply_the_broker_refuses_is_not_stored(inbox_app: Inbox) -> None:
    inbox_app.producer.fail = True
    response = inbox_app.post(
        "/api/inbox/conversations/conv-human/replies", {"text": "hello", "client_message_id": "c2"}
    )
    assert response.status_code == 503
    assert agent_messages(inbox_app.database_url, "conv-human") == []


@pytest.mark.parametrize(
    ("path", "body", "status"),
    [
        ("conv-bot/replies", {"text": "hi", "client_message_id": "c3"}, 409),
        ("conv-bot/hand-back", {}, 409),
        ("conv-human/replies", {"text": "   ", "client_message_id": "c4"}, 422),
        ("conv-human/replies", {"text": "hi"}, 422),
        ("conv-acme/replies", {"text": "hi", "client_message_id": "c5"}, 404),
        ("conv-acme/hand-back", {}, 404),  # another tenant's handoff is not the key's to end
        ("bad%20id/hand-back", {}, 422),
    ],
)
def test_bad_requests_send_nothing(inbox_app: Inbox, path, body, status) -> None:
    response = inbox_app.post(f"/api/inbox/conversations/{path}", body)
    assert response.status_code == status, response.text
    assert inbox_app.producer.sent == []


def test_hand_back_publishes_a_control_event_for_the_conversation(inbox_app: Inbox) -> None:
    response = inbox_app.post("/api/inbox/conversations/conv-human/hand-back", {"note": "solved"})

    assert response.status_code == 202
    [sent] = inbox_app.producer.sent
    assert (sent.topic, sent.key) == ("test.control", b"conv-human")
    control = ConversationControl.from_bytes(sent.value or b"")
    assert control.event_id == response.json()["event_id"]
    assert (control.action, control.agent_id, control.note) == (
        ControlAction.HAND_BACK,
        "alice",
        "solved",
    )
    assert (control.tenant_id, control.channel.value) == ("demo", "whatsapp")


async def test_dispatch_keeps_an_agent_reply_as_one_agent_message(database_url: str) -> None:
    seed(database_url)
    pool = await db.open_pool(database_url)
    try:
        found = await inbox.find_conversation(pool, "demo", "conv-human")
        assert found is not None
        reply = inbox.agent_reply(found, "On it!", "c6", "m2")
        async with pool.connection() as conn, conn.transaction():
            await inbox.store_agent_message(conn, reply)
        await db.record_sent(pool, reply, DeliveryStatus.SENT, "wamid.1")
    finally:
        await pool.close()
    assert agent_messages(database_url, "conv-human") == [(reply.reply_id, "agent", "On it!")]
    with psycopg.connect(database_url) as conn:
        count = conn.execute("SELECT count(*) FROM messages WHERE id = %s", (reply.reply_id,))
        assert count.fetchone() == (1,)
