"""Ingest answers a channel's conventional events itself: a follow, /start or /help gets
the tenant's welcome (never the NLU, never an unclear turn), an unfollow is recorded,
an edit is re-answered only when its original was not. Faust's test_context, real
Postgres; the topic sends are captured."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from typing import Any
from unittest.mock import AsyncMock, patch

import pytest
from prometheus_client import REGISTRY
from psycopg.types.json import Jsonb

from agents.memory import dialogue, snapshot, with_handoff
from agents.nlu import understand
from clawdesk import services
from clawdesk.nlu import IntentPrediction
from clawdesk.settings import AppSettings
from clawdesk.storage import attachments, db, inbound_log
from clawdesk.tenants import tenant_profile
from connectors import conventions, deliveries
from schemas import (
    AcceptedMessage,
    Attachment,
    Channel,
    ConversationSnapshot,
    InboundMessage,
    MessageKind,
    Reply,
    TurnOutcome,
)
from tests.connectors.conftest import TELEGRAM_TOKEN, make_channels
from tests.fakes import media
from tests.fakes.channels import telegram as tg
from tests.fakes.channels.server import serve


@pytest.fixture()
async def pool(database_url: str) -> AsyncIterator[Any]:
    pool = await db.open_pool(database_url)
    services.install(
        services.Services(
            settings=AppSettings(_env_file=None),  # type: ignore[call-arg]
            pool=pool,
            kb=None,
            nlu=None,
            shop=None,
            cache=None,
        )
    )
    yield pool
    await pool.close()


@dataclass
class Ingested:
    accepted: list[AcceptedMessage]
    replies: list[Reply]


@pytest.fixture()
def memory() -> Iterator[dict[str, Any]]:
    table: dict[str, Any] = {}
    with patch("agents.ingest.conversation_memory", table):
        yield table


def finished() -> float:
    labels = {"stage": "ingest"}
    return sum(
        REGISTRY.get_sample_value(name, labels) or 0.0
        for name in ("clawdesk_messages_processed_total", "clawdesk_dead_letters_total")
    )


async def ingest(msg: InboundMessage) -> Ingested:
    """Run the ingest agent on one message; what it put on the accepted and reply topics."""
    from agents.ingest import accept_messages

    accepted, replies = AsyncMock(), AsyncMock()
    before = finished()
    with (
        patch("agents.ingest.accepted_topic.send", accepted),
        patch("agents.ingest.reply_topic.send", replies),
    ):
        async with accept_messages.test_context() as running:
            await running.put(msg.to_bytes())
            for _ in range(1500):
                if finished() > before:
                    break
                await asyncio.sleep(0.01)
            else:
                raise AssertionError("ingest did not finish the message in 15 s")
    return Ingested(
        [AcceptedMessage.from_bytes(c.kwargs["value"]) for c in accepted.await_args_list],
        [Reply.from_bytes(c.kwargs["value"]) for c in replies.await_args_list],
    )


def message(n: int, text: str = "", **fields: Any) -> InboundMessage:
    return InboundMessage(
        conversation_id=fields.pop("conversation_id", "wechat:gh_1:o-follower"),
        tenant_id="demo",
        channel=fields.pop("channel", Channel.WECHAT),
        channel_message_id=f"m{n}",
        customer_id="o-follower",
        text=text,
        **fields,
    )


async def outcome(pool: Any, event_id: str) -> str | None:
    async with pool.connection() as conn:
        cur = await conn.execute("SELECT outcome FROM inbound_log WHERE event_id = %s", (event_id,))
        row = await cur.fetchone()
    return row["outcome"] if row else None


async def test_a_follow_is_welcomed_in_the_tenants_words_past_the_nlu(
    test_app: Any, pool: Any, memory: dict[str, Any]
) -> None:
    async with pool.connection() as conn:
        await conn.execute(
            "UPDATE tenants SET welcome = %s WHERE id = 'demo'",
            (Jsonb({"zh": "欢迎关注 ClawShop!回复订单号即可查询物流。"}),),
        )
    follow = message(1, kind=MessageKind.FOLLOW)

    done = await ingest(follow)

    assert done.accepted == []  # the NLU never sees it
    (reply,) = done.replies
    assert reply.text == "欢迎关注 ClawShop!回复订单号即可查询物流。"
    assert (reply.language, reply.intent, reply.outcome) == (
        "zh",
        "welcome",
        TurnOutcome.SMALL_TALK,
    )
    assert reply.reply_id == f"r-{follow.event_id}" and reply.in_reply_to == follow.event_id
    stored = memory[follow.conversation_id]
    assert [(t.role, t.text) for t in snapshot(stored).turns] == [("bot", reply.text)]
    assert dialogue(stored) == {}  # no unclear turn counted towards a handoff


@pytest.mark.parametrize("command", ["start", "help"])
async def test_start_and_help_get_the_built_in_welcome_in_the_clients_language(
    test_app: Any, pool: Any, memory: dict[str, Any], command: str
) -> None:
    start = message(
        2,
        f"/{command}",
        channel=Channel.TELEGRAM,
        conversation_id="telegram:4242",
        kind=MessageKind.COMMAND,
        command=command,
        metadata={"telegram_chat_id": "4242", "language_hint": "en-GB"},
    )

    (reply,) = (await ingest(start)).replies

    assert reply.text == tenant_profile(start.tenant_id).welcome_in("en")
    assert "ClawShop" in reply.text  # the demo tenant's profile names it
    assert reply.metadata["telegram_chat_id"] == "4242"


async def test_an_unfollow_is_recorded_and_not_answered(
    test_app: Any, pool: Any, memory: dict[str, Any]
) -> None:
    gone = message(3, kind=MessageKind.UNFOLLOW)
    await inbound_log.record(pool, [gone], inbound_log.RedrivePolicy(first_s=3600))

    done = await ingest(gone)

    assert done.accepted == [] and done.replies == []
    assert await outcome(pool, gone.event_id) == "recorded"  # not re-driven
    async with pool.connection() as conn:
        cur = await conn.execute("SELECT kind FROM messages WHERE id = %s", (gone.event_id,))
        assert (await cur.fetchone())["kind"] == "unfollow"


async def test_an_edit_is_re_answered_only_while_its_original_is_unanswered(
    test_app: Any, pool: Any, memory: dict[str, Any]
) -> None:
    original = message(4, "where is order 1002?")
    assert len((await ingest(original)).accepted) == 1
    early_edit = message(5, "where is order 1003?", edit_of="m4")

    assert len((await ingest(early_edit)).accepted) == 1  # no answer yet: read the edit

    answer = Reply(
        **original.lineage(),
        reply_id=f"r-{original.event_id}",
        in_reply_to=original.event_id,
        customer_id=original.customer_id,
        text="Order #1002 ships today.",
        language="en",
        intent="order_status",
        confidence=0.9,
        received_at=original.received_at,
    )
    await deliveries.claim(pool, answer, lease_s=30)
    late_edit = message(6, "where is order 1004?", edit_of="m4")
    await inbound_log.record(pool, [late_edit], inbound_log.RedrivePolicy(first_s=3600))

    done = await ingest(late_edit)

    assert done.accepted == [] and done.replies == []
    assert await outcome(pool, late_edit.event_id) == "recorded"
    async with pool.connection() as conn:
        cur = await conn.execute(
            "SELECT text, edit_of FROM messages WHERE id = %s", (late_edit.event_id,)
        )
        assert await cur.fetchone() == {"text": "where is order 1004?", "edit_of": "m4"}


def test_an_intent_the_channel_states_is_taken_without_a_guess() -> None:
    chosen = message(7, "order status", kind=MessageKind.CHOICE, intent="order_status")
    accepted = AcceptedMessage(**chosen.lineage(), message=chosen, memory=ConversationSnapshot())
    guess = IntentPrediction("oos", 0.12, [("oos", 0.12)])

    result = understand(accepted, guess, "v1", min_confidence=0.5)

    assert (result.intent, result.confidence) == ("order_status", 1.0)


# --- files ---------------------------------------------------------------------------


@pytest.fixture()
def bot(pool: Any, tmp_path: Any) -> Iterator[tg.FakeBotApi]:
    """The fake Bot API serving the customer's files; services that fetch from it."""
    fake = tg.FakeBotApi(TELEGRAM_TOKEN)
    with serve(fake.app) as base:
        services.install(
            services.Services(
                settings=AppSettings(
                    _env_file=None, data_dir=tmp_path, attachment_max_bytes=20_000
                ),  # type: ignore[call-arg]
                pool=pool,
                kb=None,
                nlu=None,
                shop=None,
                cache=None,
                channels=make_channels(telegram_api_base=base),
            )
        )
        yield fake


def photo_message(n: int, caption: str = "", file_id: str = "photo-1") -> InboundMessage:
    return InboundMessage(
        conversation_id="telegram:4242",
        tenant_id="demo",
        channel=Channel.TELEGRAM,
        channel_message_id=f"p{n}",
        customer_id="4242",
        text=caption,
        kind=MessageKind.TEXT if caption else MessageKind.MEDIA,
        metadata={"telegram_chat_id": "4242", "language_hint": "zh"},
        attachments=[Attachment(kind="image", provider_ref=file_id, declared_type="image/jpeg")],
    )


async def test_a_photo_alone_is_stored_and_acknowledged_in_the_customers_language(
    test_app: Any, bot: tg.FakeBotApi, memory: dict[str, Any], pool: Any
) -> None:
    bot.files["photo-1"] = media.png()
    photo = photo_message(1)

    done = await ingest(photo)

    assert done.accepted == []
    (reply,) = done.replies
    assert reply.language == "zh" and "已收到您的图片" in reply.text
    assert reply.intent == conventions.RECEIVED_INTENT and reply.reply_id == f"r-{photo.event_id}"
    (row,) = await attachments.of_conversation(pool, "telegram:4242")
    assert row.message_id == photo.event_id and row.content_type == "image/png"


async def test_a_captioned_photo_is_answered_from_its_caption_with_the_file_attached(
    test_app: Any, bot: tg.FakeBotApi, memory: dict[str, Any]
) -> None:
    bot.files["photo-1"] = media.png()

    done = await ingest(photo_message(2, "the parcel for order 1002 arrived crushed"))

    assert done.replies == []  # the pipeline answers the caption
    (accepted,) = done.accepted
    assert accepted.message.text == "the parcel for order 1002 arrived crushed"
    (attached,) = accepted.message.attachments
    assert attached.object_key and attached.content_type == "image/png"


async def test_an_oversized_file_gets_a_clear_reply_and_the_caption_is_still_read(
    test_app: Any, bot: tg.FakeBotApi, memory: dict[str, Any], pool: Any
) -> None:
    bot.files["photo-1"] = media.png() + b"\x00" * 30_000
    msg = photo_message(3, "is this covered by warranty?")

    done = await ingest(msg)

    (notice,) = done.replies
    assert "20000 bytes" not in notice.text and "MB" in notice.text
    assert notice.reply_id == f"r-{msg.event_id}-file" and notice.intent == "file_refused"
    assert len(done.accepted) == 1  # the question is answered by the pipeline
    (row,) = await attachments.of_conversation(pool, "telegram:4242")
    assert (row.refused, row.object_key) == ("too_large", None)


async def test_while_a_human_owns_the_conversation_the_photo_is_kept_for_them(
    test_app: Any, bot: tg.FakeBotApi, memory: dict[str, Any], pool: Any
) -> None:
    bot.files["photo-1"] = media.png()
    memory["telegram:4242"] = with_handoff(None, True)

    done = await ingest(photo_message(4))

    assert done.accepted == [] and done.replies == []  # the bot stays quiet
    (row,) = await attachments.of_conversation(pool, "telegram:4242")
    assert row.object_key is not None
