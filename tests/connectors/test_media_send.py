"""An agent's image goes out by each channel's media send, against the providers' fakes
(each following the provider's documented upload and message calls)."""

from __future__ import annotations

import json
from collections.abc import Iterator

import pytest

from connectors import registry, telegram, wechat, whatsapp
from connectors.config import ChannelSettings
from connectors.media import OutgoingFile
from connectors.whatsapp import OutsideWindow
from schemas import Channel, Reply, utc_now
from tests.fakes import media
from tests.fakes.channels.server import serve
from tests.fakes.channels.telegram import CHAT_ID, FakeBotApi
from tests.fakes.channels.wechat import OPENID, FakeWeChatApi
from tests.fakes.channels.whatsapp import CUSTOMER, FakeGraphApi

from .conftest import TELEGRAM_TOKEN, WECHAT_APPID, WECHAT_SECRET, WHATSAPP_TOKEN, make_channels

PHOTO = OutgoingFile(media.png(), "image/png", "label.png")


def agent_reply(
    channel: Channel, conversation: str, customer: str, text: str, **meta: str
) -> Reply:
    return Reply(
        conversation_id=conversation,
        tenant_id="demo",
        channel=channel,
        reply_id="a-1",
        in_reply_to="e-1",
        customer_id=customer,
        text=text,
        language="en",
        intent="agent",
        confidence=1.0,
        received_at=utc_now(),
        metadata=meta,
        author="agent",
    )


@pytest.fixture
def bot() -> Iterator[tuple[FakeBotApi, ChannelSettings]]:
    fake = FakeBotApi(TELEGRAM_TOKEN)
    with serve(fake.app) as base:
        yield fake, make_channels(telegram_api_base=base)


async def test_telegram_sends_the_photo_with_the_text_as_caption(
    bot: tuple[FakeBotApi, ChannelSettings],
) -> None:
    fake, settings = bot
    reply = agent_reply(Channel.TELEGRAM, f"telegram:{CHAT_ID}", str(CHAT_ID), "Your label")

    message_id = await telegram.send_media(reply, [PHOTO], settings=settings)

    (photo,) = fake.photos
    assert photo["photo"] == PHOTO.data and photo["content_type"] == "image/png"
    assert photo["caption"] == "Your label" and photo["chat_id"] == str(CHAT_ID)
    assert message_id == f"{CHAT_ID}:501"
    assert fake.sent == []  # the caption carried the text: no separate message


async def test_telegram_sends_a_text_past_the_caption_limit_after_the_photo(
    bot: tuple[FakeBotApi, ChannelSettings],
) -> None:
    fake, settings = bot
    long = "x" * 1500
    reply = agent_reply(Channel.TELEGRAM, f"telegram:{CHAT_ID}", str(CHAT_ID), long)

    await telegram.send_media(reply, [PHOTO], settings=settings)

    assert "caption" not in fake.photos[0]
    assert [s.json["text"] for s in fake.sent] == [long]


@pytest.fixture
def graph() -> Iterator[tuple[FakeGraphApi, ChannelSettings]]:
    fake = FakeGraphApi(WHATSAPP_TOKEN)
    with serve(fake.app) as base:
        yield fake, make_channels(whatsapp_api_base=base)


def wa_reply(text: str, **meta: str) -> Reply:
    return agent_reply(
        Channel.WHATSAPP,
        f"whatsapp:{CUSTOMER}",
        CUSTOMER,
        text,
        **{whatsapp.META_PHONE_NUMBER_ID: "1234567890", whatsapp.META_WA_ID: CUSTOMER, **meta},
    )


async def test_whatsapp_uploads_the_image_then_sends_an_image_message(
    graph: tuple[FakeGraphApi, ChannelSettings],
) -> None:
    fake, settings = graph

    message_id = await whatsapp.send_media(wa_reply("Your label"), [PHOTO], settings=settings)

    (upload,) = fake.uploads
    assert upload["file"] == PHOTO.data and upload["type"] == "image/png"
    (sent,) = fake.sent
    assert sent.path == "/1234567890/messages"
    assert sent.json["type"] == "image"
    assert sent.json["image"] == {"id": upload["id"], "caption": "Your label"}
    assert message_id == "wamid.OUT1"


async def test_whatsapp_refuses_an_image_outside_the_window(
    graph: tuple[FakeGraphApi, ChannelSettings],
) -> None:
    fake, settings = graph
    stale = wa_reply("late", **{whatsapp.META_CUSTOMER_AT: "2020-01-01T00:00:00+00:00"})

    with pytest.raises(OutsideWindow):
        await whatsapp.send_media(stale, [PHOTO], settings=settings)
    assert fake.uploads == [] and fake.sent == []


@pytest.fixture
def wechat_api() -> Iterator[tuple[FakeWeChatApi, ChannelSettings]]:
    fake = FakeWeChatApi(WECHAT_APPID, WECHAT_SECRET)
    with serve(fake.app) as base:
        yield fake, make_channels(wechat_api_base=base)


async def test_wechat_uploads_temporary_media_and_sends_a_custom_image(
    wechat_api: tuple[FakeWeChatApi, ChannelSettings],
) -> None:
    fake, settings = wechat_api
    reply = agent_reply(Channel.WECHAT, f"wechat:{OPENID}", OPENID, "您的面单")

    sent_id = await wechat.send_media(
        reply, [PHOTO], settings=settings, tokens=wechat.AccessTokens()
    )

    (upload,) = fake.uploads
    assert upload["type"] == "image" and upload["data"] == PHOTO.data
    text, image = (json.loads(s.body) for s in fake.sent)
    assert text == {"touser": OPENID, "msgtype": "text", "text": {"content": "您的面单"}}
    assert image == {
        "touser": OPENID,
        "msgtype": "image",
        "image": {"media_id": upload["media_id"]},
    }
    assert sent_id == "a-1"


async def test_wechat_fetches_a_new_token_when_the_upload_is_refused(
    wechat_api: tuple[FakeWeChatApi, ChannelSettings],
) -> None:
    fake, settings = wechat_api
    tokens = wechat.AccessTokens()
    reply = agent_reply(Channel.WECHAT, f"wechat:{OPENID}", OPENID, "")
    await wechat.send_media(reply, [PHOTO], settings=settings, tokens=tokens)
    fake.expire_tokens()

    await wechat.send_media(reply, [PHOTO], settings=settings, tokens=tokens)

    assert len(fake.uploads) == 2 and fake.token_fetches == 2


def test_the_channels_that_send_images_say_so() -> None:
    sending = {c.name for c in registry.channels() if c.sends_media}
    assert sending == {"web", "telegram", "whatsapp", "wechat"}
