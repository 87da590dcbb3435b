"""The dispatcher against the fake Telegram Bot API and a real Postgres: once, in
parallel per channel up to its limit, retried after Retry-After, dead-lettered last."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass, field
from typing import Any

import pytest
from psycopg_pool import AsyncConnectionPool

from clawdesk.storage import db, inbound_log
from connectors import deliveries, telegram
from connectors.deliveries import Claim
from connectors.dispatcher import Dispatcher, Outcome
from schemas import (
    Channel,
    DeliveryReceipt,
    DeliveryStatus,
    InboundMessage,
    Reply,
    new_id,
    utc_now,
)
from tests.fakes.channels.server import serve
from tests.fakes.channels.telegram import CHAT_ID, FakeBotApi

from .conftest import TELEGRAM_TOKEN, make_channels


@pytest.fixture
def bot() -> Iterator[tuple[FakeBotApi, str]]:
    fake = FakeBotApi(TELEGRAM_TOKEN)
    with serve(fake.app) as base:
        yield fake, base


@pytest.fixture
async def pool(database_url: str) -> AsyncIterator[AsyncConnectionPool]:
    pool = await db.open_pool(database_url, max_size=4)
    yield pool
    await pool.close()


@dataclass
class Outbox:
    """What the dispatcher published besides the send: receipts and dead letters."""

    receipts: list[DeliveryReceipt] = field(default_factory=list)
    dead: list[tuple[Reply, BaseException, int]] = field(default_factory=list)

    async def receipt(self, receipt: DeliveryReceipt) -> None:
        self.receipts.append(receipt)

    async def dead_letter(self, reply: Reply, error: BaseException, attempts: int) -> None:
        self.dead.append((reply, error, attempts))


def dispatcher(
    pool: AsyncConnectionPool, base: str, outbox: Outbox, **overrides: Any
) -> Dispatcher:
    values: dict[str, Any] = {
        "telegram_api_base": base,
        "send_attempts": 1,
        "dispatch_attempts": 3,
        "dispatch_deadline_s": 20.0,
    }
    values.update(overrides)
    settings = make_channels(**values)

    async def send(reply: Reply) -> str:
        return await telegram.send(reply, settings=settings)

    return Dispatcher(pool, settings, send, outbox.receipt, outbox.dead_letter)


def reply(
    conversation: str = f"telegram:{CHAT_ID}", text: str = "Tomorrow.", chat: int = CHAT_ID
) -> Reply:
    return Reply(
        conversation_id=conversation,
        tenant_id="demo",
        channel=Channel.TELEGRAM,
        reply_id=f"r-{new_id()}",
        in_reply_to="e-1",
        customer_id=str(CHAT_ID),
        text=text,
        language="en",
        intent="x",
        confidence=1.0,
        received_at=utc_now(),
        metadata={telegram.META_CHAT_ID: str(chat)},
    )


async def stored(pool: AsyncConnectionPool, reply_id: str) -> dict[str, Any]:
    async with pool.connection() as conn:
        cur = await conn.execute("SELECT * FROM deliveries WHERE reply_id = %s", (reply_id,))
        row = await cur.fetchone()
    assert row is not None
    return dict(row)  # type: ignore[call-overload]


async def test_a_reply_is_sent_once_however_often_it_comes(
    pool: AsyncConnectionPool, bot: tuple[FakeBotApi, str]
) -> None:
    fake, base = bot
    outbox = Outbox()
    sender = dispatcher(pool, base, outbox)
    one = reply()

    first = await sender.deliver(one)
    again = await sender.deliver(one)  # the event redelivered after a crash

    assert (first, again) == (Outcome.SENT, Outcome.DUPLICATE)
    assert len(fake.sent) == 1
    row = await stored(pool, one.reply_id)
    assert row["status"] == "sent"
    assert row["provider_message_id"] == f"{CHAT_ID}:101"
    assert [r.status for r in outbox.receipts] == [DeliveryStatus.SENT]
    [delivery] = await deliveries.conversation_deliveries(pool, one.conversation_id)
    assert [step.status for step in delivery.history] == ["queued", "sending", "sent"]


async def test_the_dispatcher_waits_what_retry_after_says_then_sends(
    pool: AsyncConnectionPool, bot: tuple[FakeBotApi, str]
) -> None:
    fake, base = bot
    # The connector gives up at once (its deadline is shorter than the wait asked for);
    # the dispatcher waits the 2 s out and sends again.
    sender = dispatcher(pool, base, Outbox(), send_deadline_s=0.5)
    fake.throttle_next(retry_after=2)
    started = time.monotonic()

    outcome = await sender.deliver(reply())

    assert outcome is Outcome.SENT
    assert len(fake.sent) == 2
    assert time.monotonic() - started >= 1.9


async def test_each_channel_sends_at_most_its_concurrency_at_once(
    pool: AsyncConnectionPool, bot: tuple[FakeBotApi, str]
) -> None:
    fake, base = bot
    fake.delay_s = 0.3
    sender = dispatcher(pool, base, Outbox(), dispatch_channel_concurrency={"telegram": 2})
    batch = [reply(conversation=f"telegram:{CHAT_ID}:{i}") for i in range(6)]

    outcomes = await sender.deliver_all(batch)

    assert outcomes == [Outcome.SENT] * 6
    assert fake.max_in_flight == 2


async def test_one_conversations_replies_go_out_in_order(
    pool: AsyncConnectionPool, bot: tuple[FakeBotApi, str]
) -> None:
    fake, base = bot
    fake.delay_s = 0.05
    sender = dispatcher(pool, base, Outbox(), dispatch_concurrency=4)
    batch = [reply(text=f"part {i}") for i in range(4)]

    await sender.deliver_all(batch)

    assert [r.json["text"] for r in fake.sent] == ["part 0", "part 1", "part 2", "part 3"]


async def test_after_the_last_attempt_the_reply_is_dead_lettered_and_can_be_replayed(
    pool: AsyncConnectionPool, bot: tuple[FakeBotApi, str]
) -> None:
    fake, base = bot
    outbox = Outbox()
    sender = dispatcher(pool, base, outbox, dispatch_attempts=2)
    for _ in range(2):
        fake.fail_next(502)
    one = reply()

    outcome = await sender.deliver(one)

    assert outcome is Outcome.DEAD_LETTERED
    assert len(fake.sent) == 2
    [(letter, error, attempts)] = outbox.dead
    assert (letter.reply_id, attempts) == (one.reply_id, 2)
    assert "502" in str(error)
    row = await stored(pool, one.reply_id)
    assert row["status"] == "failed" and "502" in row["detail"]
    assert [r.status for r in outbox.receipts] == [DeliveryStatus.FAILED]

    # The provider is back and an operator replays the dead letter: it goes out once.
    assert await sender.deliver(one) is Outcome.SENT
    assert (await stored(pool, one.reply_id))["status"] == "sent"
    assert len(fake.sent) == 3


async def test_a_provider_outage_parks_a_logged_reply_until_it_is_back(
    pool: AsyncConnectionPool, bot: tuple[FakeBotApi, str]
) -> None:
    fake, base = bot
    outbox = Outbox()
    sender = dispatcher(pool, base, outbox, dispatch_attempts=2, dispatch_park_retry_s=0.0)
    one = reply()
    msg = InboundMessage(
        event_id=one.in_reply_to,
        conversation_id=one.conversation_id,
        tenant_id="demo",
        channel=Channel.TELEGRAM,
        channel_message_id="u-1",
        customer_id=one.customer_id,
        text="when?",
    )
    await inbound_log.record(pool, [msg], inbound_log.RedrivePolicy(first_s=3600))
    for _ in range(2):
        fake.fail_next(502)

    assert await sender.deliver(one) is Outcome.PARKED

    assert outbox.dead == [] and outbox.receipts == []
    assert (await stored(pool, one.reply_id))["status"] == "queued"
    [due] = await inbound_log.claim_due(pool, inbound_log.RedrivePolicy(), 10)
    assert due.event_id == msg.event_id
    # The re-driven message brings the same reply back; the provider takes it now.
    assert await sender.deliver(one) is Outcome.SENT
    assert await inbound_log.backlog(pool) == 0
    assert len(fake.sent) == 3


async def test_a_refused_reply_is_dead_lettered_without_retrying(
    pool: AsyncConnectionPool, bot: tuple[FakeBotApi, str]
) -> None:
    fake, base = bot
    outbox = Outbox()

    outcome = await dispatcher(pool, base, outbox).deliver(reply(chat=999))

    assert outcome is Outcome.DEAD_LETTERED
    assert len(fake.sent) == 1
    assert "chat not found" in str(outbox.dead[0][1])


async def test_a_send_whose_answer_was_lost_is_not_sent_again(
    pool: AsyncConnectionPool, bot: tuple[FakeBotApi, str]
) -> None:
    fake, base = bot
    fake.delay_s = 1.0  # longer than the client waits: the message may have gone out
    outbox = Outbox()

    outcome = await dispatcher(pool, base, outbox, http_timeout_s=0.3).deliver(reply())
    await asyncio.sleep(1.0)  # let the fake finish the request it was serving

    assert outcome is Outcome.DEAD_LETTERED
    assert len(fake.sent) == 1
    assert "outcome unknown" in (await stored(pool, outbox.dead[0][0].reply_id))["detail"]


async def test_a_reply_claimed_by_a_worker_that_died_is_taken_over_after_the_lease(
    pool: AsyncConnectionPool, bot: tuple[FakeBotApi, str]
) -> None:
    fake, base = bot
    one = reply()
    # Another worker claimed it for 1 s and died before sending.
    assert (await deliveries.claim(pool, one, lease_s=1.0)).claim is Claim.CLAIMED
    started = time.monotonic()

    outcome = await dispatcher(pool, base, Outbox()).deliver(one)

    assert outcome is Outcome.SENT
    assert time.monotonic() - started >= 0.8
    assert len(fake.sent) == 1


async def test_a_late_sent_record_does_not_hide_a_delivered_status(
    pool: AsyncConnectionPool,
) -> None:
    one = reply()
    await deliveries.claim(pool, one, lease_s=30)
    # The provider's "delivered" webhook comes in before the dispatcher records "sent".
    receipt = DeliveryReceipt(
        **one.lineage(), reply_id=one.reply_id, status=DeliveryStatus.DELIVERED
    )
    assert await deliveries.apply_receipt(pool, receipt) == one.reply_id

    await db.record_sent(pool, one, DeliveryStatus.SENT, "4242:7")

    row = await stored(pool, one.reply_id)
    assert (row["status"], row["provider_message_id"]) == ("delivered", "4242:7")


async def test_a_reply_outside_whatsapps_window_fails_with_the_reason_the_inbox_shows(
    pool: AsyncConnectionPool,
) -> None:
    from datetime import timedelta

    from clawdesk.handoff import inbox
    from connectors import whatsapp
    from tests.fakes.channels import whatsapp as wa

    from .conftest import WHATSAPP_TOKEN

    graph = wa.FakeGraphApi(WHATSAPP_TOKEN)
    outbox = Outbox()
    late = reply().model_copy(
        update={
            "channel": Channel.WHATSAPP,
            "conversation_id": "whatsapp:1069:4915",
            "metadata": {
                whatsapp.META_PHONE_NUMBER_ID: "1069",
                whatsapp.META_WA_ID: "4915",
                whatsapp.META_CUSTOMER_AT: (utc_now() - timedelta(hours=30)).isoformat(),
            },
        }
    )
    with serve(graph.app) as base:
        settings = make_channels(whatsapp_api_base=base, send_attempts=1, dispatch_attempts=3)

        async def send(r: Reply) -> str:
            return await whatsapp.send(r, settings=settings)

        sending = Dispatcher(pool, settings, send, outbox.receipt, outbox.dead_letter)
        outcome = await sending.deliver(late)

    assert outcome is not Outcome.SENT and graph.sent == []  # never offered to Meta
    (dead,) = outbox.dead
    assert dead[2] == 1  # refused for good: not retried
    (receipt,) = outbox.receipts
    assert receipt.status is DeliveryStatus.FAILED
    assert receipt.detail.startswith("not sent: the customer last wrote over 24 hours ago")
    async with pool.connection() as conn:
        await conn.execute(
            "INSERT INTO messages (id, conversation_id, tenant_id, user_id, direction, author,"
            " channel, text, \"timestamp\") VALUES (%s, %s, 'demo', '4915', 'out', 'agent',"
            " 'whatsapp', 'Your refund went out.', now())",
            (late.reply_id, late.conversation_id),
        )
    (shown,) = await inbox.history(pool, late.conversation_id)
    assert shown.delivery == "failed" and "CLAWDESK_WHATSAPP_TEMPLATE" in shown.delivery_detail
