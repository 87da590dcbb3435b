"""The inbound log and its re-driver on a real Postgres: what is acknowledged is sent
again until the pipeline settles it, in order, and never once it is settled."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import pytest
from psycopg_pool import AsyncConnectionPool

from clawdesk.gateway import intake
from clawdesk.gateway.fanout import ReplyHub
from clawdesk.gateway.state import GatewayState
from clawdesk.settings import AppSettings
from clawdesk.storage import db, inbound_log
from schemas import Channel, DeliveryStatus, InboundMessage, Reply

from .fakes import FakeProducer

NOW = inbound_log.RedrivePolicy(first_s=0.0, max_s=0.0, max_redrives=3)


@pytest.fixture
async def pool(database_url: str) -> AsyncIterator[AsyncConnectionPool]:
    pool = await db.open_pool(database_url)
    yield pool
    await pool.close()


async def state_of(pool: AsyncConnectionPool, **settings: object) -> GatewayState:
    base = AppSettings(_env_file=None, topic_prefix="t", redrive_first_s=0.0, redrive_max_s=0.0)  # type: ignore[call-arg]
    task: asyncio.Task[None] = asyncio.create_task(asyncio.sleep(0))
    return GatewayState(
        settings=base.model_copy(update=settings),
        producer=FakeProducer(),
        pool=pool,
        hub=ReplyHub(),
        inbound_topic="t.inbound",
        replies_task=task,
    )


def message(conversation: str, n: int) -> InboundMessage:
    return InboundMessage(
        conversation_id=conversation,
        tenant_id="demo",
        channel=Channel.WEB,
        channel_message_id=f"{conversation}-{n}",
        customer_id=conversation,
        text=f"message {n}",
    )


def reply_to(msg: InboundMessage, author: str = "bot") -> Reply:
    return Reply(
        **msg.lineage(),
        reply_id=f"r-{msg.event_id}",
        in_reply_to=msg.event_id,
        customer_id=msg.customer_id,
        text="ok",
        language="en",
        intent="greeting",
        confidence=1.0,
        received_at=msg.received_at,
        author=author,  # type: ignore[arg-type]
    )


async def test_an_open_message_is_redriven_as_the_same_event(pool: AsyncConnectionPool) -> None:
    state = await state_of(pool)
    msg = message("c1", 1)
    await inbound_log.record(pool, [msg], NOW)

    sent = await intake.redrive_once(state, intake.redrive_policy(state.settings))

    assert sent == 1
    producer = state.producer
    assert isinstance(producer, FakeProducer)
    assert [s.value for s in producer.sent] == [msg.to_bytes()]
    assert producer.sent[0].key == b"c1"


async def test_a_sent_reply_settles_its_message_and_stops_redrives(
    pool: AsyncConnectionPool,
) -> None:
    state = await state_of(pool)
    msg = message("c2", 1)
    await intake.admit(state, [msg])
    async with pool.connection() as conn:
        await conn.execute(
            "INSERT INTO deliveries (reply_id, conversation_id, tenant_id, channel, status)"
            " VALUES (%s, 'c2', 'demo', 'web', 'sending')",
            (f"r-{msg.event_id}",),
        )

    await db.record_sent(pool, reply_to(msg), DeliveryStatus.SENT, None)

    assert await intake.redrive_once(state, intake.redrive_policy(state.settings)) == 0
    assert await inbound_log.backlog(pool) == 0


async def test_a_conversations_messages_are_redriven_in_the_order_accepted(
    pool: AsyncConnectionPool,
) -> None:
    state = await state_of(pool)
    first, second, third = message("c3", 1), message("c3", 2), message("c3", 3)
    for msg in (first, second, third):
        await inbound_log.record(pool, [msg], NOW)

    await intake.redrive_once(state, intake.redrive_policy(state.settings))

    producer = state.producer
    assert isinstance(producer, FakeProducer)
    assert [s.value for s in producer.sent] == [m.to_bytes() for m in (first, second, third)]


async def test_redrives_back_off_and_a_hopeless_message_is_abandoned(
    pool: AsyncConnectionPool,
) -> None:
    state = await state_of(pool, redrive_max=2)
    msg = message("c4", 1)
    await inbound_log.record(pool, [msg], NOW)
    policy = intake.redrive_policy(state.settings)

    sends = [await intake.redrive_once(state, policy) for _ in range(4)]

    assert sends == [1, 1, 0, 0]  # the third look abandons it instead of sending it
    async with pool.connection() as conn:
        cur = await conn.execute(
            "SELECT outcome FROM inbound_log WHERE event_id = %s", (msg.event_id,)
        )
        assert (await cur.fetchone()) == {"outcome": "abandoned"}
        cur = await conn.execute("SELECT stage, error FROM dead_letters")
        letters = await cur.fetchall()
    assert [r["stage"] for r in letters] == ["redrive"]


async def test_park_notes_why_and_brings_the_redrive_forward(pool: AsyncConnectionPool) -> None:
    msg = message("c5", 1)
    later = inbound_log.RedrivePolicy(first_s=3600.0)
    await inbound_log.record(pool, [msg], later)

    assert await inbound_log.park(pool, msg.event_id, "nlu", "OperationalError: down", 0.0)
    assert not await inbound_log.park(pool, "not-logged", "nlu", "x", 0.0)
    due = await inbound_log.claim_due(pool, later, 10)

    assert [d.event_id for d in due] == [msg.event_id]
    async with pool.connection() as conn:
        cur = await conn.execute(
            "SELECT parked_stage, parked_reason FROM inbound_log WHERE event_id = %s",
            (msg.event_id,),
        )
        assert await cur.fetchone() == {
            "parked_stage": "nlu",
            "parked_reason": "OperationalError: down",
        }


async def test_an_agent_reply_does_not_settle_the_customer_message(
    pool: AsyncConnectionPool,
) -> None:
    msg = message("c6", 1)
    await inbound_log.record(pool, [msg], NOW)
    agent = reply_to(msg, "agent")

    await db.record_sent(pool, agent, DeliveryStatus.SENT, None)

    assert await inbound_log.backlog(pool) == 1


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        (b'{"event_id": "e1", "channel_message_id": "m"}', "e1"),
        (b'{"event_id": "x", "message": {"event_id": "e2", "channel_message_id": "m"}}', "e2"),
        (
            b'{"context": {"nlu": {"accepted": {"message":'
            b' {"event_id": "e3", "channel_message_id": "m"}}}}}',
            "e3",
        ),
        (b'{"reply_id": "r", "in_reply_to": "e4"}', "e4"),
        (b"not json \x00", None),
        (b'{"event_id": "x"}', None),
        (b"[1, 2]", None),
    ],
)
def test_inbound_event_id_finds_the_customer_message(raw: bytes, expected: str | None) -> None:
    assert inbound_log.inbound_event_id(raw) == expected


async def test_a_stranded_older_message_is_enqueued_before_a_new_one(
    pool: AsyncConnectionPool,
) -> None:
    state = await state_of(pool)
    first, second = message("c7", 1), message("c7", 2)
    producer = state.producer
    assert isinstance(producer, FakeProducer)
    producer.fail = True
    await intake.admit(state, [first])  # acknowledged, but the broker is down
    producer.fail = False

    await intake.admit(state, [second])

    assert [s.value for s in producer.sent] == [first.to_bytes(), second.to_bytes()]
    # Both are on their way now: a third message sends only itself.
    third = message("c7", 3)
    await intake.admit(state, [third])
    assert [s.value for s in producer.sent][2:] == [third.to_bytes()]


async def test_a_parked_older_message_goes_ahead_of_a_new_one(pool: AsyncConnectionPool) -> None:
    state = await state_of(pool, redrive_first_s=3600.0)
    first, second = message("c8", 1), message("c8", 2)
    await intake.admit(state, [first])
    assert await inbound_log.park(pool, first.event_id, "nlu", "OperationalError", 3600.0)

    await intake.admit(state, [second])

    producer = state.producer
    assert isinstance(producer, FakeProducer)
    assert [s.value for s in producer.sent] == [
        first.to_bytes(),
        first.to_bytes(),
        second.to_bytes(),
    ]
