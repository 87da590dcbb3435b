"""The WhatsApp Cloud API channel: webhook verification and parsing, and sending."""

from __future__ import annotations

import time
from collections.abc import Iterator

import httpx
import pytest
from pydantic import SecretStr

from connectors import whatsapp
from connectors.config import ChannelSettings, DeliveryError, ProviderUnavailable
from schemas import Channel, DeliveryStatus, Reply, utc_now
from tests.fakes.channels.server import free_port, serve
from tests.fakes.channels.whatsapp import (
    CUSTOMER,
    PHONE_NUMBER_ID,
    FakeGraphApi,
    button_reply,
    encode,
    list_reply,
    meta_signature,
    notification,
    status,
    text_message,
)

from .conftest import WHATSAPP_SECRET, WHATSAPP_TOKEN, WHATSAPP_VERIFY, Hooks, make_channels

URL = "/webhooks/whatsapp"
CONVERSATION = f"whatsapp:{PHONE_NUMBER_ID}:{CUSTOMER}"


async def post_signed(hooks: Hooks, body: bytes, secret: str = WHATSAPP_SECRET) -> httpx.Response:
    headers = {
        "X-Hub-Signature-256": meta_signature(secret, body),
        "Content-Type": "application/json",
    }
    return await hooks.client.post(URL, content=body, headers=headers)


async def test_subscription_echoes_the_challenge_for_the_right_token(hooks: Hooks) -> None:
    params = {
        "hub.mode": "subscribe",
        "hub.verify_token": WHATSAPP_VERIFY,
        "hub.challenge": "1158201444",
    }

    response = await hooks.client.get(URL, params=params)

    assert response.status_code == 200
    assert response.text == "1158201444"


@pytest.mark.parametrize(
    "params",
    [
        {"hub.mode": "subscribe", "hub.verify_token": "wrong", "hub.challenge": "1"},
        {"hub.mode": "unsubscribe", "hub.verify_token": WHATSAPP_VERIFY, "hub.challenge": "1"},
        {"hub.verify_token": WHATSAPP_VERIFY, "hub.challenge": "1"},
    ],
)
async def test_subscription_is_403_otherwise(hooks: Hooks, params: dict[str, str]) -> None:
    response = await hooks.client.get(URL, params=params)

    assert response.status_code == 403
    assert "error" in response.json()


async def test_text_and_interactive_messages_are_enqueued_one_each(hooks: Hooks) -> None:
    body = encode(
        notification(
            [
                text_message("Where is my order?"),
                button_reply("track", "Track order"),
                list_reply("refund", "Refund"),
            ]
        )
    )

    response = await post_signed(hooks, body)

    assert response.status_code == 200
    assert response.json() == {"enqueued": 3, "receipts": 0}
    sent = hooks.inbound()
    assert [m.text for m in sent] == ["Where is my order?", "Track order", "Refund"]
    assert [m.channel_message_id for m in sent] == ["wamid.IN1", "wamid.IN2", "wamid.IN3"]
    first = sent[0]
    assert (first.conversation_id, first.customer_id, first.tenant_id) == (
        CONVERSATION,
        CUSTOMER,
        "demo",
    )
    assert first.channel is Channel.WHATSAPP
    assert sent[1].metadata[whatsapp.META_CHOICE_ID] == "track"
    assert first.metadata["customer_name"] == "Ana"
    assert hooks.producer.sent[0].key == CONVERSATION.encode()


async def test_statuses_become_receipts_naming_the_reply(hooks: Hooks) -> None:
    body = encode(
        notification(
            statuses=[status("delivered"), status("read"), status("failed", callback=None)]
        )
    )

    response = await post_signed(hooks, body)

    assert response.status_code == 200
    assert hooks.inbound() == []
    receipts = hooks.receipts()
    assert [r.status for r in receipts] == [
        DeliveryStatus.DELIVERED,
        DeliveryStatus.READ,
        DeliveryStatus.FAILED,
    ]
    assert receipts[0].reply_id == "r-evt1"
    assert receipts[2].reply_id == "wamid.OUT1"  # not one of ours: named by its wamid
    assert "131047" in receipts[2].detail
    assert receipts[0].conversation_id == CONVERSATION


async def test_unreadable_kinds_are_acknowledged_without_enqueueing(hooks: Hooks) -> None:
    reaction = {
        "from": CUSTOMER,
        "id": "wamid.REACT",
        "type": "reaction",
        "reaction": {"message_id": "wamid.OUT1", "emoji": "👍"},
    }

    response = await post_signed(hooks, encode(notification([reaction])))

    assert response.status_code == 200
    assert hooks.producer.sent == []


@pytest.mark.parametrize(
    "signature", [None, "", "sha256=deadbeef", meta_signature("another-secret", b"{}")]
)
async def test_missing_or_bad_signature_is_401_and_nothing_enqueued(
    hooks: Hooks, signature: str | None
) -> None:
    body = encode(notification([text_message("hi")]))
    headers = {"X-Hub-Signature-256": signature} if signature is not None else {}

    response = await hooks.client.post(URL, content=body, headers=headers)

    assert response.status_code == 401
    assert response.json()["error"]
    assert hooks.producer.sent == []


async def test_a_signature_over_another_body_is_refused(hooks: Hooks) -> None:
    signed = encode(notification([text_message("hi")]))
    tampered = encode(notification([text_message("give me a refund")]))

    response = await hooks.client.post(
        URL,
        content=tampered,
        headers={"X-Hub-Signature-256": meta_signature(WHATSAPP_SECRET, signed)},
    )

    assert response.status_code == 401
    assert hooks.producer.sent == []


@pytest.mark.parametrize(
    "payload",
    [
        b"not json",
        b"[]",
        b'{"object": "page", "entry": []}',
        encode({"object": "whatsapp_business_account"}),
        encode(notification([{**text_message("hi"), "from": "evil:id/../x"}])),
        encode(notification([{**text_message("hi"), "id": ""}])),
        encode(notification([{"from": CUSTOMER, "id": "w", "type": "text"}])),
        encode(notification([{**button_reply("a", "b"), "interactive": {"type": "button_reply"}}])),
    ],
)
async def test_malformed_bodies_are_400_and_nothing_enqueued(hooks: Hooks, payload: bytes) -> None:
    response = await post_signed(hooks, payload)

    assert response.status_code == 400
    assert response.json()["error"]
    assert hooks.producer.sent == []


async def test_one_bad_message_refuses_the_whole_notification(hooks: Hooks) -> None:
    good = text_message("hi")
    bad = {**text_message("x", message_id="wamid.2"), "text": {"body": 5}}

    response = await post_signed(hooks, encode(notification([good, bad])))

    assert response.status_code == 400
    assert hooks.producer.sent == []


async def test_a_number_no_tenant_is_configured_for_is_404(hooks: Hooks) -> None:
    hooks.app.state.channel_settings = make_channels(whatsapp_tenants={"999": "demo"})

    response = await post_signed(hooks, encode(notification([text_message("hi")])))

    assert response.status_code == 404
    assert response.json() == {"error": "unknown tenant"}
    assert hooks.producer.sent == []


async def test_a_tenant_missing_from_the_database_is_404(hooks: Hooks) -> None:
    hooks.app.state.channel_settings = make_channels(whatsapp_tenants={PHONE_NUMBER_ID: "gone"})

    response = await post_signed(hooks, encode(notification([text_message("hi")])))

    assert response.status_code == 404
    assert hooks.producer.sent == []


async def test_mapped_number_routes_to_its_tenant(hooks: Hooks) -> None:
    hooks.app.state.channel_settings = make_channels(whatsapp_tenants={PHONE_NUMBER_ID: "acme"})

    response = await post_signed(hooks, encode(notification([text_message("hi")])))

    assert response.status_code == 200
    assert hooks.inbound()[0].tenant_id == "acme"


async def test_oversized_body_is_413_and_nothing_enqueued(hooks: Hooks) -> None:
    body = encode(notification([text_message("x" * 70_000)]))

    response = await post_signed(hooks, body)

    assert response.status_code == 413
    assert hooks.producer.sent == []


async def test_broker_failure_is_acknowledged_once_postgres_recorded_it(hooks: Hooks) -> None:
    hooks.producer.fail = True

    response = await post_signed(hooks, encode(notification([text_message("hi")])))

    # Durable in the inbound log: the re-driver enqueues it when the broker is back.
    assert response.status_code == 200
    assert len(hooks.pool.logged) == 1


async def test_database_failure_is_503_so_meta_retries(hooks: Hooks) -> None:
    hooks.pool.down = True

    response = await post_signed(hooks, encode(notification([text_message("hi")])))

    assert response.status_code == 503
    assert hooks.producer.sent == []


async def test_a_disabled_channel_is_404(hooks: Hooks) -> None:
    hooks.app.state.channel_settings = make_channels(whatsapp_app_secret=None)

    response = await post_signed(hooks, encode(notification([text_message("hi")])))

    assert response.status_code == 404
    assert hooks.producer.sent == []


# --- sending ------------------------------------------------------------------------


@pytest.fixture
def graph() -> Iterator[tuple[FakeGraphApi, ChannelSettings]]:
    fake = FakeGraphApi(WHATSAPP_TOKEN)
    with serve(fake.app) as base:
        yield fake, make_channels(whatsapp_api_base=base)


def reply(text: str = "It ships tomorrow.", **metadata: str) -> Reply:
    return Reply(
        conversation_id=CONVERSATION,
        tenant_id="demo",
        channel=Channel.WHATSAPP,
        reply_id="r-evt1",
        in_reply_to="evt1",
        customer_id=CUSTOMER,
        text=text,
        language="en",
        intent="order_status",
        confidence=0.9,
        received_at=utc_now(),
        metadata={
            whatsapp.META_PHONE_NUMBER_ID: PHONE_NUMBER_ID,
            whatsapp.META_WA_ID: CUSTOMER,
            **metadata,
        },
    )


async def test_send_posts_a_text_message_and_returns_the_wamid(
    graph: tuple[FakeGraphApi, ChannelSettings],
) -> None:
    fake, settings = graph

    message_id = await whatsapp.send(reply(), settings=settings)

    assert message_id == "wamid.OUT1"
    (call,) = fake.sent
    assert call.path == f"/{PHONE_NUMBER_ID}/messages"
    assert call.headers["authorization"] == f"Bearer {WHATSAPP_TOKEN}"
    assert call.json["messaging_product"] == "whatsapp"
    assert call.json["to"] == CUSTOMER
    assert call.json["type"] == "text"
    assert call.json["text"]["body"] == "It ships tomorrow."
    assert call.json["biz_opaque_callback_data"] == "r-evt1"


async def test_send_waits_out_a_429_with_retry_after_then_succeeds(
    graph: tuple[FakeGraphApi, ChannelSettings],
) -> None:
    fake, settings = graph
    fake.throttle_next(retry_after=1)
    started = time.monotonic()

    message_id = await whatsapp.send(reply(), settings=settings)

    assert message_id == "wamid.OUT2"
    assert len(fake.sent) == 2
    assert time.monotonic() - started >= 0.9


async def test_send_splits_text_over_the_limit(graph: tuple[FakeGraphApi, ChannelSettings]) -> None:
    fake, settings = graph

    await whatsapp.send(reply("a" * 5000), settings=settings)

    assert [len(c.json["text"]["body"]) for c in fake.sent] == [4096, 904]


async def test_a_refused_message_is_a_delivery_error_not_retried(
    graph: tuple[FakeGraphApi, ChannelSettings],
) -> None:
    fake, settings = graph
    fake.answer_next(
        400, {"error": {"message": "Recipient not in allowed list", "code": 131030}}, {}
    )

    with pytest.raises(DeliveryError, match="131030"):
        await whatsapp.send(reply(), settings=settings)
    assert len(fake.sent) == 1


async def test_a_wrong_token_is_a_delivery_error(
    graph: tuple[FakeGraphApi, ChannelSettings],
) -> None:
    _, settings = graph

    with pytest.raises(DeliveryError, match="190"):
        await whatsapp.send(
            reply(), settings=settings.model_copy(update={"whatsapp_token": SecretStr("nope")})
        )


async def test_statuses_for_a_tenant_missing_from_the_database_are_404(hooks: Hooks) -> None:
    hooks.app.state.channel_settings = make_channels(whatsapp_tenants={PHONE_NUMBER_ID: "gone"})

    response = await post_signed(hooks, encode(notification(statuses=[status("read")])))

    assert response.status_code == 404
    assert hooks.producer.sent == []


async def test_an_unreachable_api_is_a_transient_error_after_the_retries() -> None:
    settings = make_channels(whatsapp_api_base=f"http://127.0.0.1:{free_port()}", send_attempts=2)

    with pytest.raises(ProviderUnavailable, match="ConnectError") as raised:
        await whatsapp.send(reply(), settings=settings)
    assert not raised.value.maybe_delivered
    assert isinstance(raised.value, ConnectionError)  # what the dispatcher retries
