"""The Telegram Bot API channel: webhook, long polling, sending."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Iterator

import pytest

from connectors import telegram
from connectors.config import ChannelSettings, DeliveryError
from schemas import Channel, InboundMessage, Reply, utc_now
from tests.fakes.channels.server import serve
from tests.fakes.channels.telegram import CHAT_ID, FakeBotApi, sticker_update, text_update

from .conftest import TELEGRAM_SECRET, TELEGRAM_TOKEN, Hooks, make_channels

URL = "/webhooks/telegram"


def secret_header(value: str = TELEGRAM_SECRET) -> dict[str, str]:
    return {"X-Telegram-Bot-Api-Secret-Token": value}


async def test_a_text_update_is_enqueued(hooks: Hooks) -> None:
    response = await hooks.client.post(
        URL, json=text_update("我的订单在哪?"), headers=secret_header()
    )

    assert response.status_code == 200
    assert response.json() == {"enqueued": 1}
    (message,) = hooks.inbound()
    assert message.channel is Channel.TELEGRAM
    assert message.conversation_id == f"telegram:{CHAT_ID}"
    assert message.channel_message_id == f"{CHAT_ID}:7"
    assert message.customer_id == str(CHAT_ID)
    assert message.text == "我的订单在哪?"
    assert message.metadata["language_hint"] == "zh"


async def test_updates_without_text_are_acknowledged_and_dropped(hooks: Hooks) -> None:
    member_joined = {
        "update_id": 5,
        "my_chat_member": {"chat": {"id": 1, "type": "group"}, "date": 1700000000},
    }
    for update in (sticker_update(), member_joined):
        response = await hooks.client.post(URL, json=update, headers=secret_header())
        assert response.status_code == 200
        assert response.json() == {"enqueued": 0}
    assert hooks.producer.sent == []


@pytest.mark.parametrize("headers", [{}, secret_header("wrong"), secret_header("")])
async def test_a_wrong_or_missing_secret_token_is_401(hooks: Hooks, headers: dict) -> None:
    response = await hooks.client.post(URL, json=text_update("hi"), headers=headers)

    assert response.status_code == 401
    assert hooks.producer.sent == []


@pytest.mark.parametrize(
    "body",
    [
        b"{",
        b"null",
        b'{"update_id": "x"}',
        b'{"update_id": 1, "message": {"chat": {}}}',
        json.dumps({"update_id": 2**70}).encode(),
    ],
)
async def test_malformed_updates_are_400(hooks: Hooks, body: bytes) -> None:
    response = await hooks.client.post(URL, content=body, headers=secret_header())

    assert response.status_code == 400
    assert hooks.producer.sent == []


async def test_an_unknown_tenant_is_404(hooks: Hooks) -> None:
    hooks.app.state.channel_settings = make_channels(telegram_tenant="nobody")

    response = await hooks.client.post(URL, json=text_update("hi"), headers=secret_header())

    assert response.status_code == 404
    assert hooks.producer.sent == []


# --- Bot API ------------------------------------------------------------------------


@pytest.fixture
def bot() -> Iterator[tuple[FakeBotApi, ChannelSettings]]:
    fake = FakeBotApi(TELEGRAM_TOKEN)
    with serve(fake.app) as base:
        yield fake, make_channels(telegram_api_base=base)


def reply(text: str = "Tomorrow.", conversation: str = f"telegram:{CHAT_ID}") -> Reply:
    return Reply(
        conversation_id=conversation,
        tenant_id="demo",
        channel=Channel.TELEGRAM,
        reply_id="r-1",
        in_reply_to="e-1",
        customer_id=str(CHAT_ID),
        text=text,
        language="en",
        intent="x",
        confidence=1.0,
        received_at=utc_now(),
    )


async def test_send_returns_chat_and_message_id(bot: tuple[FakeBotApi, ChannelSettings]) -> None:
    fake, settings = bot

    provider_id = await telegram.send(reply(), settings=settings)

    assert provider_id == f"{CHAT_ID}:101"
    assert fake.sent[0].json == {"chat_id": str(CHAT_ID), "text": "Tomorrow."}


async def test_send_honours_retry_after_of_a_429(bot: tuple[FakeBotApi, ChannelSettings]) -> None:
    fake, settings = bot
    fake.throttle_next(retry_after=1)
    started = time.monotonic()

    provider_id = await telegram.send(reply(), settings=settings)

    assert provider_id == f"{CHAT_ID}:102"
    assert len(fake.sent) == 2
    assert time.monotonic() - started >= 0.9


async def test_a_retry_after_beyond_the_deadline_is_not_waited_for(
    bot: tuple[FakeBotApi, ChannelSettings],
) -> None:
    fake, settings = bot
    fake.throttle_next(retry_after=60)
    started = time.monotonic()

    with pytest.raises(ConnectionError, match="Too Many Requests"):
        await telegram.send(reply(), settings=settings)
    # Given back to the dispatcher (a transient error) instead of sleeping a minute.
    assert time.monotonic() - started < 2


async def test_a_missing_chat_is_a_delivery_error(bot: tuple[FakeBotApi, ChannelSettings]) -> None:
    _, settings = bot

    with pytest.raises(DeliveryError, match="chat not found"):
        await telegram.send(reply(conversation="telegram:999"), settings=settings)


async def test_long_reply_is_split_at_4096(bot: tuple[FakeBotApi, ChannelSettings]) -> None:
    fake, settings = bot

    await telegram.send(reply("b" * 4100), settings=settings)

    assert [len(c.json["text"]) for c in fake.sent] == [4096, 4]


async def test_long_polling_yields_messages_and_confirms_by_offset(
    bot: tuple[FakeBotApi, ChannelSettings],
) -> None:
    fake, settings = bot
    fake.updates = [
        text_update("one", update_id=50, message_id=1),
        sticker_update(update_id=51),
        text_update("two", update_id=52, message_id=2),
    ]
    received: list[InboundMessage] = []

    async def take_three() -> None:
        async for message in telegram.poll_updates(
            tenant_id="demo", settings=settings, timeout_s=1
        ):
            received.append(message)
            if len(received) == 2:
                fake.updates.append(text_update("three", update_id=53, message_id=3))
            if len(received) == 3:
                return

    await asyncio.wait_for(take_three(), timeout=10)

    assert [m.text for m in received] == ["one", "two", "three"]
    assert "offset" not in fake.polls[0]
    # The second call confirms the whole first batch, the sticker included.
    assert fake.polls[1]["offset"] == "53"
    assert [u["update_id"] for u in fake.updates] == [53]
