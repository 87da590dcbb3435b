"""The in-app chat channel: the API-key REST endpoints and the signed reply callback."""

from __future__ import annotations

import time
from collections.abc import Iterator
from datetime import UTC, datetime

import pytest

from connectors import inapp
from connectors.config import ChannelSettings, DeliveryError
from schemas import Channel, Reply, utc_now
from tests.fakes.channels.inapp import FakeAppBackend
from tests.fakes.channels.server import serve
from tests.gateway.fakes import stored_message

from .conftest import INAPP_KEYS, INAPP_SECRET, Hooks, make_channels

URL = "/api/inapp/messages"
MESSAGE = {
    "customer_id": "user-17",
    "text": "  Where is my order?  ",
    "client_message_id": "m-0001",
    "conversation_id": "chat-9",
}


def key(tenant: str = "demo") -> dict[str, str]:
    return {"X-Api-Key": INAPP_KEYS[tenant]}


async def test_a_message_is_enqueued_under_the_keys_tenant(hooks: Hooks) -> None:
    response = await hooks.client.post(URL, json=MESSAGE, headers=key("acme"))

    assert response.status_code == 202
    (message,) = hooks.inbound()
    assert response.json() == {"conversation_id": "inapp:acme:chat-9", "event_id": message.event_id}
    assert message.tenant_id == "acme"
    assert message.channel is Channel.INAPP
    assert (message.customer_id, message.channel_message_id, message.text) == (
        "user-17",
        "m-0001",
        "Where is my order?",
    )


async def test_a_message_without_conversation_starts_one(hooks: Hooks) -> None:
    body = {k: v for k, v in MESSAGE.items() if k != "conversation_id"}

    response = await hooks.client.post(URL, json=body, headers=key())

    assert response.status_code == 202
    assert response.json()["conversation_id"].startswith("inapp:demo:")


@pytest.mark.parametrize("headers", [{}, {"X-Api-Key": "nope"}, {"X-Api-Key": "kéy".encode()}])
async def test_a_missing_or_unknown_key_is_401(hooks: Hooks, headers: dict) -> None:
    response = await hooks.client.post(URL, json=MESSAGE, headers=headers)

    assert response.status_code == 401
    assert hooks.producer.sent == []


async def test_a_key_of_a_tenant_missing_from_the_database_is_404(hooks: Hooks) -> None:
    response = await hooks.client.post(URL, json=MESSAGE, headers=key("ghost"))

    assert response.status_code == 404
    assert response.json() == {"error": "unknown tenant"}
    assert hooks.producer.sent == []


@pytest.mark.parametrize(
    "body",
    [
        {**MESSAGE, "text": "   "},
        {**MESSAGE, "text": "x" * 4001},
        {**MESSAGE, "conversation_id": "../../etc"},
        {**MESSAGE, "unexpected": 1},
        {k: v for k, v in MESSAGE.items() if k != "client_message_id"},
        {**MESSAGE, "metadata": {str(i): "v" for i in range(20)}},
    ],
)
async def test_invalid_messages_are_422_naming_the_field(hooks: Hooks, body: dict) -> None:
    response = await hooks.client.post(URL, json=body, headers=key())

    assert response.status_code == 422
    assert response.json()["error"]
    assert hooks.producer.sent == []


async def test_history_is_served_only_to_the_conversations_tenant(hooks: Hooks) -> None:
    at = datetime(2025, 1, 2, tzinfo=UTC)
    hooks.pool.messages.append(stored_message("inapp:acme:chat-9", "m-1", "customer", "hi", at))
    path = "/api/inapp/conversations/inapp:acme:chat-9/messages"

    mine = await hooks.client.get(path, headers=key("acme"))
    theirs = await hooks.client.get(path, headers=key("demo"))
    anonymous = await hooks.client.get(path)

    assert mine.status_code == 200
    assert [m["text"] for m in mine.json()] == ["hi"]
    assert theirs.status_code == 404
    assert anonymous.status_code == 401


# --- the reply callback -----------------------------------------------------------------


@pytest.fixture
def backend() -> Iterator[tuple[FakeAppBackend, ChannelSettings]]:
    fake = FakeAppBackend(INAPP_SECRET)
    with serve(fake.app) as base:
        yield fake, make_channels(inapp_callback_urls={"acme": f"{base}/clawdesk/replies"})


def reply(tenant: str = "acme") -> Reply:
    return Reply(
        conversation_id=f"inapp:{tenant}:chat-9",
        tenant_id=tenant,
        channel=Channel.INAPP,
        reply_id="r-9",
        in_reply_to="e-9",
        customer_id="user-17",
        text="明天发货",
        language="zh",
        intent="order_status",
        confidence=0.8,
        received_at=utc_now(),
    )


async def test_send_posts_a_callback_the_backend_can_verify(
    backend: tuple[FakeAppBackend, ChannelSettings],
) -> None:
    fake, settings = backend

    provider_id = await inapp.send(reply(), settings=settings)

    assert provider_id == "app-1"
    (call,) = fake.received
    assert call.json["reply_id"] == "r-9"
    assert call.json["text"] == "明天发货"
    assert call.json["conversation_id"] == "inapp:acme:chat-9"
    assert abs(int(call.headers["x-clawdesk-timestamp"]) - time.time()) < 5


async def test_send_retries_after_a_429(backend: tuple[FakeAppBackend, ChannelSettings]) -> None:
    fake, settings = backend
    fake.throttle_next(retry_after=1)

    provider_id = await inapp.send(reply(), settings=settings)

    assert provider_id == "app-1"


async def test_a_callback_signed_with_another_secret_is_refused(
    backend: tuple[FakeAppBackend, ChannelSettings],
) -> None:
    fake, settings = backend
    wrong = settings.model_copy(
        update={
            "inapp_webhook_secret": make_channels(inapp_webhook_secret="other").inapp_webhook_secret
        }
    )

    with pytest.raises(DeliveryError, match="401"):
        await inapp.send(reply(), settings=wrong)
    assert fake.refused == 1


async def test_a_tenant_without_callback_url_gets_replies_over_the_websocket(
    backend: tuple[FakeAppBackend, ChannelSettings],
) -> None:
    fake, settings = backend
    published: list[Reply] = []

    async def publish(reply: Reply) -> str:
        published.append(reply)
        return reply.reply_id

    provider_id = await inapp.send(reply("demo"), settings=settings, publish=publish)

    assert provider_id == "r-9"
    assert [r.tenant_id for r in published] == ["demo"]
    assert fake.received == []
