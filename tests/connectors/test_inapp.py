"""The in-app chat channel: the API-key REST endpoints and the signed reply callback."""

from __future__ import annotations

import socket
import time
from collections.abc import Iterator
from datetime import UTC, datetime

import pytest
from pydantic import ValidationError

from connectors import inapp
from connectors.config import ChannelSettings, DeliveryError, ProviderUnavailable
from schemas import Channel, Reply, utc_now
from tests.fakes.channels.inapp import FakeAppBackend
from tests.fakes.channels.server import serve
from tests.gateway.conftest import TOKENS
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
    assert response.json() == {
        "conversation_id": "inapp:acme:chat-9",
        "event_id": message.event_id,
        # Opens the reply socket of that conversation (tenants without a callback URL).
        "token": TOKENS.issue("acme", "inapp:acme:chat-9"),
    }
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


@pytest.mark.parametrize(
    "body",
    [
        {**MESSAGE, "conversation_id": "inapp:demo:chat-9"},  # a full id of another tenant
        {**MESSAGE, "tenant_id": "demo"},  # naming the tenant in the body
    ],
)
async def test_a_key_cannot_post_as_or_into_another_tenant(hooks: Hooks, body: dict) -> None:
    response = await hooks.client.post(URL, json=body, headers=key("acme"))

    assert response.status_code == 422
    assert hooks.producer.sent == []
    # The app's own id always lands inside the key's tenant.
    ok = await hooks.client.post(URL, json=MESSAGE, headers=key("acme"))
    assert [m.conversation_id for m in hooks.inbound()] == ["inapp:acme:chat-9"]
    assert ok.json()["conversation_id"] != "inapp:demo:chat-9"


# --- the reply callback -----------------------------------------------------------------


@pytest.fixture
def backend() -> Iterator[tuple[FakeAppBackend, ChannelSettings]]:
    fake = FakeAppBackend(INAPP_SECRET)
    with serve(fake.app) as base:
        # The fake listens on 127.0.0.1: allowed here, as in the local demo.
        yield (
            fake,
            make_channels(
                inapp_callback_urls={"acme": f"{base}/clawdesk/replies"},
                inapp_allow_private_callbacks=True,
            ),
        )


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
    # The backend drops a re-sent reply (after a crash) by this key.
    assert call.headers["idempotency-key"] == "r-9"


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


# --- SSRF: callback URLs may not reach internal networks -----------------------------


@pytest.mark.parametrize(
    "url",
    [
        "http://127.0.0.1:8080/hook",
        "http://10.1.2.3/hook",
        "http://192.168.0.10/hook",
        "http://169.254.169.254/latest/meta-data/",  # cloud metadata
        "http://[::1]/hook",
        "http://[::ffff:127.0.0.1]/hook",
        "http://2130706433/hook",  # 127.0.0.1 as one number
        "http://0x7f.1/hook",
        "http://localhost:9000/hook",
        "http://api.localhost/hook",
        "http://224.0.0.1/hook",  # multicast
        "http://0.0.0.0/hook",
        "ftp://hooks.acme.example/",
        "file:///etc/passwd",
    ],
)
def test_an_internal_callback_url_is_refused_when_configured(url: str) -> None:
    with pytest.raises(ValidationError, match=r"CLAWDESK_INAPP_ALLOW_PRIVATE_CALLBACKS|http"):
        make_channels(inapp_callback_urls={"acme": url})


def test_public_callback_urls_are_accepted_and_internal_ones_only_when_allowed() -> None:
    public = make_channels(inapp_callback_urls={"acme": "https://hooks.acme.example/c"})
    assert public.inapp_callback_urls == {"acme": "https://hooks.acme.example/c"}
    local = make_channels(
        inapp_callback_urls={"acme": "http://127.0.0.1:9/c"}, inapp_allow_private_callbacks=True
    )
    assert local.inapp_callback_urls == {"acme": "http://127.0.0.1:9/c"}


def resolving_to(*addresses: str):
    """A resolver answering every name with `addresses` (no DNS is asked)."""

    async def resolve(host: str, port: int) -> list[str]:
        return list(addresses)

    return resolve


@pytest.mark.parametrize("addresses", [("10.0.0.7",), ("93.184.216.34", "127.0.0.1")])
async def test_a_callback_name_that_resolves_internally_is_refused_at_send_time(
    backend: tuple[FakeAppBackend, ChannelSettings], addresses: tuple[str, ...]
) -> None:
    fake, _ = backend
    # Public on its face when configured; DNS points it inside by the time a reply goes.
    settings = make_channels(inapp_callback_urls={"acme": "https://hooks.acme.example/c"})

    with pytest.raises(DeliveryError, match="internal address"):
        await inapp.send(reply(), settings=settings, resolve=resolving_to(*addresses))
    assert fake.received == []


async def test_a_private_target_allowed_when_configured_is_checked_again_when_sending(
    backend: tuple[FakeAppBackend, ChannelSettings],
) -> None:
    fake, settings = backend
    disallowed = settings.model_copy(update={"inapp_allow_private_callbacks": False})

    with pytest.raises(DeliveryError, match=r"internal address|loopback"):
        await inapp.send(reply(), settings=disallowed)
    assert fake.received == []


async def test_the_callback_goes_to_the_address_that_was_checked(
    backend: tuple[FakeAppBackend, ChannelSettings],
) -> None:
    fake, settings = backend
    port = settings.inapp_callback_urls["acme"].split(":")[2].split("/")[0]
    named = settings.model_copy(
        update={
            "inapp_callback_urls": {"acme": f"http://hooks.acme.example:{port}/clawdesk/replies"}
        }
    )

    # hooks.acme.example exists nowhere: only the checked (pinned) address can reach the fake.
    provider_id = await inapp.send(reply(), settings=named, resolve=resolving_to("127.0.0.1"))

    assert provider_id == "app-1"
    (call,) = fake.received
    assert call.headers["host"] == f"hooks.acme.example:{port}"


async def test_a_callback_name_that_does_not_resolve_now_is_retried_later() -> None:
    settings = make_channels(
        inapp_callback_urls={"acme": "https://hooks.acme.example/c"}, send_attempts=1
    )

    async def no_dns(host: str, port: int) -> list[str]:
        raise socket.gaierror(socket.EAI_AGAIN, "Temporary failure in name resolution")

    with pytest.raises(ProviderUnavailable, match="cannot resolve"):
        await inapp.send(reply(), settings=settings, resolve=no_dns)
