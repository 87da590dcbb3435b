"""The generic half of reading a channel by polling (`clawdesk poll <channel>`,
`clawdesk/cli/poll.py`); each channel's own source is its module's `PollSource`.

For a deployment without a public URL (development, or a mailbox with no relay), a
poll loop reads the provider and puts each message on the inbound topic exactly as the
webhooks do: keyed by conversation, acknowledged by the broker before the next is taken.
The source confirms only what was taken (Telegram by the next `getUpdates` offset, IMAP
by flagging a batch seen), so a crash redelivers and the pipeline drops the duplicates;
nothing is lost. A broker outage is waited out: the loop retries the same message.
With DATABASE_URL set, each message is first recorded in the inbound log, as the
gateway does, so one the broker loses in a crash is re-driven by the gateway.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator, Awaitable, Callable

import psycopg
from aiokafka import AIOKafkaProducer
from aiokafka.errors import KafkaError
from psycopg_pool import AsyncConnectionPool

from clawdesk.settings import AppSettings, app_settings, connection_settings
from clawdesk.storage import inbound_log
from clawdesk.storage.db import open_pool
from schemas import InboundMessage
from topics import inbound_spec

log = logging.getLogger(__name__)

BROKER_RETRY_S = 1.0

Enqueue = Callable[[InboundMessage], Awaitable[None]]


async def forward(
    messages: AsyncIterator[InboundMessage], enqueue: Enqueue, *, limit: int | None = None
) -> int:
    """Enqueue each message before taking the next; stop after `limit` (None: never).
    Returns how many were enqueued."""
    count = 0
    async for message in messages:
        await _until_enqueued(enqueue, message)
        count += 1
        log.info(
            "polled message enqueued",
            extra={
                "channel": message.channel.value,
                "event_id": message.event_id,
                "conversation_id": message.conversation_id,
            },
        )
        if limit is not None and count >= limit:
            break
    return count


async def _until_enqueued(enqueue: Enqueue, message: InboundMessage) -> None:
    while True:
        try:
            await enqueue(message)
            return
        except (KafkaError, TimeoutError, psycopg.Error) as err:
            # Not confirmed to the provider yet: waiting here loses nothing.
            log.warning("enqueue failed; retrying", extra={"error": repr(err)})
            await asyncio.sleep(BROKER_RETRY_S)


def producer_enqueue(producer: AIOKafkaProducer, settings: AppSettings) -> Enqueue:
    """Enqueue on the inbound topic the way the gateway does (keyed, acked)."""
    topic = inbound_spec.name(settings)

    async def enqueue(message: InboundMessage) -> None:
        async with asyncio.timeout(settings.stage_timeout_s):
            await producer.send_and_wait(
                topic, key=message.conversation_id.encode(), value=message.to_bytes()
            )

    return enqueue


async def run(source: AsyncIterator[InboundMessage], bootstrap: str, limit: int | None) -> int:
    """Poll `source` into the inbound topic of the broker at `bootstrap`."""
    producer = AIOKafkaProducer(
        bootstrap_servers=bootstrap,
        client_id="clawdesk-poll",
        acks="all",
        enable_idempotence=False,  # as the gateway: the pipeline dedupes redeliveries
    )
    settings = app_settings()
    database_url = connection_settings().database_url
    pool = await open_pool(database_url, max_size=2) if database_url else None
    await producer.start()
    try:
        enqueue = producer_enqueue(producer, settings)
        if pool is not None:
            enqueue = logged_enqueue(pool, enqueue, settings)
        return await forward(source, enqueue, limit=limit)
    finally:
        await producer.stop()
        if pool is not None:
            await pool.close()


def logged_enqueue(pool: AsyncConnectionPool, enqueue: Enqueue, settings: AppSettings) -> Enqueue:
    """Record each message in the inbound log before enqueueing it."""
    policy = inbound_log.RedrivePolicy(
        first_s=settings.redrive_first_s,
        max_s=settings.redrive_max_s,
        max_redrives=settings.redrive_max,
    )

    async def record_then_enqueue(message: InboundMessage) -> None:
        async with asyncio.timeout(settings.stage_timeout_s):
            await inbound_log.record(pool, [message], policy)
        await enqueue(message)

    return record_then_enqueue
