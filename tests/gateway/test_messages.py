"""POST /api/web/messages and the history endpoint."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from schemas import Channel, InboundMessage
from topics import inbound_spec

from .conftest import Gateway, auth
from .fakes import stored_message

URL = "/api/web/messages"


def test_valid_message_is_enqueued_once_keyed_by_conversation(gateway: Gateway) -> None:
    response = gateway.client.post(
        URL,
        json={
            "conversation_id": "conv-1",
            "customer_id": "cust-1",
            "text": "  Where is my order?  ",
            "client_message_id": "client-1",
        },
        headers=auth("conv-1"),
    )

    assert response.status_code == 202
    assert len(gateway.producer.sent) == 1
    sent = gateway.producer.sent[0]
    assert sent.topic == inbound_spec.name(gateway.settings) == "test.inbound"
    assert sent.key == b"conv-1"
    assert sent.value is not None
    msg = InboundMessage.from_bytes(sent.value)
    assert (msg.conversation_id, msg.customer_id, msg.tenant_id) == ("conv-1", "cust-1", "demo")
    assert msg.channel is Channel.WEB
    assert msg.channel_message_id == "client-1"
    assert msg.text == "Where is my order?"
    assert response.json() == {
        "conversation_id": "conv-1",
        "event_id": msg.event_id,
        "token": gateway.token("conv-1"),
    }


def test_message_without_conversation_starts_a_new_one(gateway: Gateway) -> None:
    response = gateway.client.post(URL, json={"text": "hello", "client_message_id": "c-2"})

    assert response.status_code == 202
    conversation_id = response.json()["conversation_id"]
    assert conversation_id.startswith("web-") and len(conversation_id) == 4 + 32
    assert gateway.producer.sent[0].key == conversation_id.encode()
    assert response.json()["token"] == gateway.token(conversation_id)


@pytest.mark.parametrize(
    "body", [b'{"text": Infinity}', b'{"text": "hi", "client_message_id": NaN}', b"[-Infinity]"]
)
def test_a_body_with_non_json_numbers_is_a_422_not_a_500(gateway: Gateway, body: bytes) -> None:
    # Python's json reads NaN/Infinity; the error echoing them back could not be rendered.
    response = gateway.client.post(URL, content=body, headers={"Content-Type": "application/json"})

    assert response.status_code == 422
    assert all("input" not in error for error in response.json()["detail"])
    assert gateway.producer.sent == []


@pytest.mark.parametrize("text", ["", "   \n\t ", "x" * 4001])
def test_unsendable_text_is_rejected_and_nothing_enqueued(gateway: Gateway, text: str) -> None:
    response = gateway.client.post(URL, json={"text": text, "client_message_id": "c-3"})

    assert response.status_code == 422
    assert response.json()["error"].startswith("text: text must be 1 to 4000 characters")
    assert gateway.producer.sent == []


def test_missing_client_message_id_is_rejected(gateway: Gateway) -> None:
    response = gateway.client.post(URL, json={"text": "hi"})

    assert response.status_code == 422
    assert "client_message_id" in response.json()["error"]
    assert gateway.producer.sent == []


def test_unknown_tenant_is_404_and_nothing_enqueued(gateway: Gateway) -> None:
    response = gateway.client.post(
        URL, json={"text": "hi", "client_message_id": "c-4", "tenant_id": "nobody"}
    )

    assert response.status_code == 404
    assert response.json() == {"error": "unknown tenant"}
    assert gateway.producer.sent == []


def test_broker_failure_still_accepts_what_postgres_recorded(gateway: Gateway) -> None:
    gateway.producer.fail = True

    response = gateway.client.post(URL, json={"text": "hi", "client_message_id": "c-5"})

    # The acknowledgement rests on the inbound log; the re-driver sends it later.
    assert response.status_code == 202
    assert gateway.pool.logged == [response.json()["event_id"]]
    assert gateway.producer.sent == []


def test_message_is_recorded_before_it_is_enqueued(gateway: Gateway) -> None:
    response = gateway.client.post(URL, json={"text": "hi", "client_message_id": "c-7"})

    assert response.status_code == 202
    assert gateway.pool.logged == [response.json()["event_id"]]
    assert len(gateway.producer.sent) == 1


def test_overload_is_503_with_retry_after_and_nothing_taken(gateway: Gateway) -> None:
    state = gateway.app.state.gateway
    state.backlog.update(gateway.settings.max_backlog)

    response = gateway.client.post(URL, json={"text": "hi", "client_message_id": "c-8"})

    assert response.status_code == 503
    assert response.json()["code"] == "overloaded"
    assert response.headers["Retry-After"] == str(gateway.settings.overload_retry_after_s)
    assert gateway.pool.logged == [] and gateway.producer.sent == []


def test_database_failure_is_503_and_nothing_enqueued(gateway: Gateway) -> None:
    gateway.pool.down = True

    response = gateway.client.post(URL, json={"text": "hi", "client_message_id": "c-6"})

    assert response.status_code == 503
    assert response.json() == {"error": "database unavailable"}
    assert gateway.producer.sent == []


def test_history_lists_the_conversation_oldest_first(gateway: Gateway) -> None:
    t0 = datetime(2025, 1, 2, 3, 4, 5, tzinfo=UTC)
    gateway.pool.messages += [
        stored_message("conv-h", "r-1", "bot", "It ships tomorrow.", t0 + timedelta(seconds=2)),
        stored_message("conv-h", "m-1", "customer", "Where is it?", t0),
        stored_message("other", "m-9", "customer", "not mine", t0),
    ]

    response = gateway.client.get("/api/web/conversations/conv-h/messages", headers=auth("conv-h"))

    assert response.status_code == 200
    history = response.json()
    assert [(m["id"], m["author"], m["text"]) for m in history] == [
        ("m-1", "customer", "Where is it?"),
        ("r-1", "bot", "It ships tomorrow."),
    ]
    assert datetime.fromisoformat(history[0]["timestamp"]) == t0


def test_history_refuses_a_malformed_conversation_id(gateway: Gateway) -> None:
    response = gateway.client.get("/api/web/conversations/a%20b/messages")

    assert response.status_code == 422
