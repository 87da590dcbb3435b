"""Each channel's conventions read as events: commands, follows, choices, groups, edits,
media references; and on the way out, callback answers, group threads and WhatsApp's
24-hour window. Documented payload shapes, against the gateway and the local fakes."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import datetime, timedelta

import httpx
import pytest

from connectors import telegram, whatsapp
from connectors.config import ChannelSettings
from schemas import Channel, MessageKind, Reply, utc_now
from tests.fakes.channels import telegram as tg
from tests.fakes.channels import wechat as wx
from tests.fakes.channels import whatsapp as wa
from tests.fakes.channels.server import serve

from .conftest import (
    TELEGRAM_SECRET,
    TELEGRAM_TOKEN,
    WECHAT_TOKEN,
    WHATSAPP_SECRET,
    WHATSAPP_TOKEN,
    Hooks,
    make_channels,
)

TG_HEADERS = {"X-Telegram-Bot-Api-Secret-Token": TELEGRAM_SECRET}


@pytest.fixture
def channels() -> ChannelSettings:
    return make_channels(
        telegram_bot_username=tg.BOT_USERNAME,
        wechat_menu_intents={"MENU_ORDERS": "order_status"},
    )


async def post_telegram(hooks: Hooks, update: dict) -> httpx.Response:
    return await hooks.client.post("/webhooks/telegram", json=update, headers=TG_HEADERS)


async def post_wechat(hooks: Hooks, body: bytes) -> httpx.Response:
    return await hooks.client.post(
        "/webhooks/wechat", params=wx.signed_query(WECHAT_TOKEN), content=body
    )


async def post_whatsapp(hooks: Hooks, messages: list[dict]) -> httpx.Response:
    body = wa.encode(wa.notification(messages))
    headers = {"X-Hub-Signature-256": wa.meta_signature(WHATSAPP_SECRET, body)}
    return await hooks.client.post("/webhooks/whatsapp", content=body, headers=headers)


# --- Telegram ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    "text", ["/start", "/help", "/start ref-campaign-7", "/start@clawshop_bot"]
)
async def test_start_and_help_are_commands_not_questions(hooks: Hooks, text: str) -> None:
    response = await post_telegram(hooks, tg.command_update(text))

    assert response.json() == {"enqueued": 1}
    (message,) = hooks.inbound()
    assert message.kind is MessageKind.COMMAND
    assert message.command == text.split()[0].split("@")[0].removeprefix("/")


async def test_another_command_is_read_as_text(hooks: Hooks) -> None:
    await post_telegram(hooks, tg.command_update("/orders 1002"))

    (message,) = hooks.inbound()
    assert message.kind is MessageKind.TEXT and message.text == "/orders 1002"


async def test_a_group_message_not_meant_for_the_bot_is_not_enqueued(hooks: Hooks) -> None:
    chatter = await post_telegram(hooks, tg.group_update("anyone tried the blue one?"))
    other_bot = tg.group_update("/start@another_bot", message_id=22)
    other_bot["message"]["entities"] = [{"type": "bot_command", "offset": 0, "length": 18}]
    addressed_elsewhere = await post_telegram(hooks, other_bot)

    assert chatter.json() == addressed_elsewhere.json() == {"enqueued": 0}
    assert hooks.inbound() == []


async def test_a_mention_or_a_reply_to_the_bot_is_answered_per_member(hooks: Hooks) -> None:
    await post_telegram(hooks, tg.group_update("where is order 1002?", mention=True))
    await post_telegram(
        hooks,
        tg.group_update("it is 1003", user_id=6161, reply_to_bot=True, message_id=23),
    )

    first, second = hooks.inbound()
    assert first.text == "where is order 1002?"  # the mention is not part of the question
    assert first.conversation_id == f"telegram:{tg.GROUP_ID}:{tg.MEMBER_ID}"
    assert second.conversation_id == f"telegram:{tg.GROUP_ID}:6161"  # memory per member
    assert first.customer_id == str(tg.MEMBER_ID)
    assert first.metadata[telegram.META_CHAT_ID] == str(tg.GROUP_ID)
    assert first.metadata[telegram.META_REPLY_TO] == "21"


async def test_a_mention_after_astral_characters_is_found_by_utf16_offsets(hooks: Hooks) -> None:
    update = tg.group_update("🎁🎁 @clawshop_bot is the gift wrapped?")
    # Each 🎁 is two UTF-16 code units: the mention starts at unit 5, character 3.
    update["message"]["entities"] = [{"type": "mention", "offset": 5, "length": 13}]

    await post_telegram(hooks, update)

    (message,) = hooks.inbound()
    assert message.text == "🎁🎁  is the gift wrapped?"


async def test_a_callback_query_is_the_customers_choice(hooks: Hooks) -> None:
    await post_telegram(hooks, tg.callback_update("intent:track_shipment"))
    await post_telegram(hooks, tg.callback_update("yes", query_id="q-2", update_id=10009))

    chosen, confirmed = hooks.inbound()
    assert chosen.kind is MessageKind.CHOICE
    assert chosen.intent == "track_shipment" and chosen.text == "track shipment"
    assert chosen.channel_message_id == "callback:4382bfdwdsb323b2d9"
    assert chosen.metadata[telegram.META_CALLBACK_ID] == "4382bfdwdsb323b2d9"
    assert chosen.conversation_id == f"telegram:{tg.CHAT_ID}"
    assert (confirmed.intent, confirmed.text, confirmed.choice) == (None, "yes", "yes")


async def test_an_edit_is_a_message_of_its_own_tied_to_the_original(hooks: Hooks) -> None:
    await post_telegram(hooks, tg.edited_update("where is order 1003?"))
    await post_telegram(hooks, tg.edited_update("where is order 1004?", edit_date=1700000090))

    first, second = hooks.inbound()
    assert first.edit_of == second.edit_of == f"{tg.CHAT_ID}:7"
    assert first.channel_message_id == f"{tg.CHAT_ID}:7:edit:1700000060"
    assert second.channel_message_id == f"{tg.CHAT_ID}:7:edit:1700000090"
    assert first.text == "where is order 1003?"


async def test_a_photo_is_an_attachment_and_its_caption_the_text(hooks: Hooks) -> None:
    await post_telegram(hooks, tg.photo_update("the parcel arrived crushed"))
    alone = tg.photo_update()
    alone["message"]["message_id"] = 41
    await post_telegram(hooks, alone)

    captioned, bare = hooks.inbound()
    assert captioned.kind is MessageKind.TEXT and captioned.text == "the parcel arrived crushed"
    (photo,) = captioned.attachments
    assert (photo.kind, photo.provider_ref, photo.declared_bytes) == (
        "image",
        "AgACAgIAAxk-photo",
        64000,
    )  # the largest size
    assert bare.kind is MessageKind.MEDIA and bare.text == "" and len(bare.attachments) == 1


@pytest.fixture
def bot() -> Iterator[tuple[tg.FakeBotApi, ChannelSettings]]:
    fake = tg.FakeBotApi(TELEGRAM_TOKEN)
    with serve(fake.app) as base:
        yield fake, make_channels(telegram_api_base=base)


def telegram_reply(**metadata: str) -> Reply:
    return Reply(
        conversation_id=f"telegram:{tg.CHAT_ID}",
        tenant_id="demo",
        channel=Channel.TELEGRAM,
        reply_id="r-1",
        in_reply_to="e-1",
        customer_id=str(tg.CHAT_ID),
        text="Which order?",
        language="en",
        intent="order_status",
        confidence=1.0,
        received_at=utc_now(),
        metadata={telegram.META_CHAT_ID: str(tg.CHAT_ID), **metadata},
    )


async def test_the_reply_to_a_callback_first_answers_the_query(
    bot: tuple[tg.FakeBotApi, ChannelSettings],
) -> None:
    fake, settings = bot
    reply = telegram_reply(**{telegram.META_CALLBACK_ID: "q-77"})

    await telegram.send(reply, settings=settings)
    # A retried send: the query is answered already (Telegram refuses) but the text goes.
    await telegram.send(reply, settings=settings)

    assert [c["callback_query_id"] for c in fake.callbacks] == ["q-77", "q-77"]
    assert fake.answered_callbacks == {"q-77"}
    assert [s.json["text"] for s in fake.sent] == ["Which order?", "Which order?"]


async def test_a_group_reply_goes_to_the_group_in_the_members_thread(
    bot: tuple[tg.FakeBotApi, ChannelSettings],
) -> None:
    fake, settings = bot
    reply = telegram_reply(
        **{telegram.META_CHAT_ID: str(tg.GROUP_ID), telegram.META_REPLY_TO: "21"}
    )
    reply = reply.model_copy(update={"conversation_id": f"telegram:{tg.GROUP_ID}:{tg.MEMBER_ID}"})

    await telegram.send(reply, settings=settings)

    (sent,) = fake.sent
    assert sent.json["chat_id"] == str(tg.GROUP_ID)
    assert sent.json["reply_parameters"] == {"message_id": 21, "allow_sending_without_reply": True}


# --- WeChat ------------------------------------------------------------------------------


async def test_subscribe_is_a_follow_and_unsubscribe_an_unfollow(hooks: Hooks) -> None:
    await post_wechat(hooks, wx.subscribe_xml())
    unfollow = await post_wechat(hooks, wx.event_xml("unsubscribe", created=1700000100))

    assert unfollow.text == "success"
    follow, gone = hooks.inbound()
    assert follow.kind is MessageKind.FOLLOW and follow.text == ""
    assert gone.kind is MessageKind.UNFOLLOW
    assert gone.channel_message_id == f"{wx.OPENID}:1700000100:unsubscribe"


async def test_a_menu_click_is_a_choice_with_its_intent(hooks: Hooks) -> None:
    await post_wechat(hooks, wx.event_xml("CLICK", key="MENU_ORDERS"))
    await post_wechat(hooks, wx.event_xml("CLICK", key="intent:refund_request", created=1700000200))
    await post_wechat(hooks, wx.event_xml("CLICK", key="V1001_TODAY_MUSIC", created=1700000300))

    mapped, named, unmapped = hooks.inbound()
    assert (mapped.kind, mapped.intent, mapped.choice) == (
        MessageKind.CHOICE,
        "order_status",
        "MENU_ORDERS",
    )
    assert named.intent == "refund_request" and named.text == "refund request"
    # A key the bot cannot map is answered with the welcome, never "I did not understand".
    assert (unmapped.kind, unmapped.command) == (MessageKind.COMMAND, "help")


async def test_a_voice_note_is_read_by_its_recognition(hooks: Hooks) -> None:
    await post_wechat(hooks, wx.voice_xml("我的快递到哪了"))

    (message,) = hooks.inbound()
    assert message.kind is MessageKind.TEXT and message.text == "我的快递到哪了"
    (voice,) = message.attachments
    assert (voice.kind, voice.provider_ref, voice.declared_type) == (
        "voice",
        "MEDIA_VOICE_1",
        "audio/amr",
    )


async def test_an_image_is_media_and_one_without_media_id_is_refused(hooks: Hooks) -> None:
    await post_wechat(hooks, wx.image_xml())
    broken = wx.image_xml().replace(b"<MediaId><![CDATA[MEDIA_IMG_1]]></MediaId>", b"")
    refused = await post_wechat(hooks, broken)

    (message,) = hooks.inbound()
    assert (
        message.kind is MessageKind.MEDIA and message.attachments[0].provider_ref == "MEDIA_IMG_1"
    )
    assert refused.status_code == 400


# --- WhatsApp -----------------------------------------------------------------------------


async def test_button_and_list_replies_are_read_by_their_ids(hooks: Hooks) -> None:
    await post_whatsapp(
        hooks,
        [
            wa.button_reply("intent:order_status", "Where is my order?"),
            wa.list_reply("size-m", "Medium"),
        ],
    )

    button, row = hooks.inbound()
    assert (button.kind, button.intent, button.text) == (
        MessageKind.CHOICE,
        "order_status",
        "Where is my order?",
    )
    assert (row.choice, row.intent, row.text) == ("size-m", None, "Medium")


async def test_an_image_caption_is_the_text_and_the_window_opens(hooks: Hooks) -> None:
    await post_whatsapp(hooks, [wa.image_message("box was wet"), wa.image_message(message_id="w2")])

    captioned, bare = hooks.inbound()
    assert captioned.text == "box was wet" and captioned.kind is MessageKind.TEXT
    assert captioned.attachments[0].provider_ref == "1166231088291398"
    assert bare.kind is MessageKind.MEDIA
    opened = captioned.metadata[whatsapp.META_CUSTOMER_AT]
    assert abs((utc_now() - datetime.fromisoformat(opened)).total_seconds()) < 60


@pytest.fixture
def graph() -> Iterator[tuple[wa.FakeGraphApi, str]]:
    fake = wa.FakeGraphApi(WHATSAPP_TOKEN)
    with serve(fake.app) as base:
        yield fake, base


def whatsapp_reply(hours_since_customer: float, author: str = "agent") -> Reply:
    wrote = utc_now() - timedelta(hours=hours_since_customer)
    return Reply(
        conversation_id=f"whatsapp:{wa.PHONE_NUMBER_ID}:{wa.CUSTOMER}",
        tenant_id="demo",
        channel=Channel.WHATSAPP,
        reply_id="a-1",
        in_reply_to="e-1",
        customer_id=wa.CUSTOMER,
        text="Your replacement ships today.",
        language="en",
        intent="agent",
        confidence=1.0,
        received_at=utc_now(),
        author=author,  # type: ignore[arg-type]
        metadata={
            whatsapp.META_PHONE_NUMBER_ID: wa.PHONE_NUMBER_ID,
            whatsapp.META_WA_ID: wa.CUSTOMER,
            whatsapp.META_CUSTOMER_AT: wrote.isoformat(),
            "customer_name": "Ana",
        },
    )


async def test_inside_the_window_a_reply_goes_as_text(graph: tuple[wa.FakeGraphApi, str]) -> None:
    fake, base = graph

    await whatsapp.send(whatsapp_reply(23.5), settings=make_channels(whatsapp_api_base=base))

    assert fake.sent[0].json["type"] == "text"


async def test_outside_the_window_a_reply_goes_as_the_configured_template(
    graph: tuple[wa.FakeGraphApi, str],
) -> None:
    fake, base = graph
    fake.close_window(wa.CUSTOMER)
    template = {
        "name": "order_update",
        "language": "en_US",
        "parameters": ["{customer_name}", "{text}"],
    }
    settings = make_channels(whatsapp_api_base=base, whatsapp_template=template)

    wamid = await whatsapp.send(whatsapp_reply(25), settings=settings)

    assert wamid == "wamid.OUT1"
    sent = fake.sent[0].json
    assert sent["type"] == "template"
    assert sent["template"] == {
        "name": "order_update",
        "language": {"code": "en_US"},
        "components": [
            {
                "type": "body",
                "parameters": [
                    {"type": "text", "text": "Ana"},
                    {"type": "text", "text": "Your replacement ships today."},
                ],
            }
        ],
    }


async def test_outside_the_window_without_a_template_the_reply_is_refused_unsent(
    graph: tuple[wa.FakeGraphApi, str],
) -> None:
    fake, base = graph

    with pytest.raises(whatsapp.OutsideWindow, match="24 hours"):
        await whatsapp.send(whatsapp_reply(25), settings=make_channels(whatsapp_api_base=base))

    assert fake.sent == []


async def test_metas_re_engagement_refusal_is_reported_as_the_window(
    graph: tuple[wa.FakeGraphApi, str],
) -> None:
    fake, base = graph
    fake.close_window(wa.CUSTOMER)  # Meta's clock says closed; ours had no stamp

    reply = whatsapp_reply(1)
    reply = reply.model_copy(
        update={
            "metadata": {k: v for k, v in reply.metadata.items() if k != whatsapp.META_CUSTOMER_AT}
        }
    )
    with pytest.raises(whatsapp.OutsideWindow, match="131047"):
        await whatsapp.send(reply, settings=make_channels(whatsapp_api_base=base))
