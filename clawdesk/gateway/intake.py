"""How the gateway takes customer messages: shed load early, record durably, enqueue.

A message is acknowledged once it is in the inbound log (Postgres), not once the broker
has it: the embedded broker keeps topics in memory, so only Postgres survives its crash.
The enqueue right after is best effort; whatever the broker lost or never got is sent
again by `redrive_open_messages`, which every gateway runs.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Sequence

import psycopg
from aiokafka.errors import KafkaError

from clawdesk.gateway.state import GatewayState
from clawdesk.ops import metrics, tracing
from clawdesk.settings import AppSettings
from clawdesk.storage import db, inbound_log
from schemas import InboundMessage

log = logging.getLogger(__name__)

PRUNE_EVERY_S = 3600.0
WARN_EVERY_S = 30.0  # at most one "re-driver cannot reach Postgres" warning this often


class Overloaded(Exception):
    """The pipeline's backlog is past its bound: refuse instead of answering late."""

    def __init__(self, backlog: int, bound: int, retry_after_s: int) -> None:
        super().__init__(f"{backlog} messages waiting (bound {bound})")
        self.retry_after_s = retry_after_s


class Unavailable(Exception):
    """The message could not be recorded (Postgres did not answer): nothing was taken."""


def redrive_policy(settings: AppSettings) -> inbound_log.RedrivePolicy:
    """The re-drive schedule from settings."""
    return inbound_log.RedrivePolicy(
        first_s=settings.redrive_first_s,
        max_s=settings.redrive_max_s,
        max_redrives=settings.redrive_max,
    )


def check_backlog(state: GatewayState, incoming: int) -> None:
    """Raise `Overloaded` when taking `incoming` more would pass `max_backlog`."""
    bound = state.settings.max_backlog
    if bound and state.backlog.open_messages + incoming > bound:
        raise Overloaded(state.backlog.open_messages, bound, state.settings.overload_retry_after_s)


async def admit(state: GatewayState, messages: Sequence[InboundMessage]) -> None:
    """Take the messages: refuse if overloaded (`Overloaded`) or Postgres is down
    (`Unavailable`), else record them and enqueue them on the inbound topic."""
    if not messages:
        return
    check_backlog(state, len(messages))
    try:
        async with asyncio.timeout(state.settings.stage_timeout_s):
            await inbound_log.record(state.pool, messages, redrive_policy(state.settings))
    except (psycopg.Error, TimeoutError) as err:
        log.warning("could not record inbound messages", extra={"error": repr(err)})
        raise Unavailable("database unavailable") from err
    # Counted here too, so a burst between two re-driver looks is bounded as well.
    state.backlog.open_messages += len(messages)
    await enqueue(state, messages)


async def stranded_before(
    state: GatewayState, messages: Sequence[InboundMessage]
) -> list[inbound_log.Due]:
    """Older open messages of these conversations that are not on their way (their
    enqueue failed, or a stage parked them): they must go out before the new ones."""
    policy = redrive_policy(state.settings)
    new_ids = [m.event_id for m in messages]
    found: list[inbound_log.Due] = []
    for conversation_id in dict.fromkeys(m.conversation_id for m in messages):
        found += await inbound_log.claim_stranded(state.pool, conversation_id, new_ids, policy)
    return found


async def enqueue(state: GatewayState, messages: Sequence[InboundMessage]) -> bool:
    """Send recorded messages in order, keyed by conversation, each conversation's
    stranded older messages first; False if the broker did not take them all (they are
    recorded, so the re-driver sends them later)."""
    try:
        async with asyncio.timeout(state.settings.stage_timeout_s):
            ahead = await stranded_before(state, messages)
            records = [(d.event_id, d.conversation_id, d.payload) for d in ahead] + [
                (m.event_id, m.conversation_id, m.to_bytes()) for m in messages
            ]
            for event_id, conversation_id, payload in records:
                # The root of the message's trace (tracing on): every stage's span follows.
                with tracing.span("gateway", None, **{"clawdesk.event_id": event_id}):
                    await state.producer.send_and_wait(
                        state.inbound_topic,
                        key=conversation_id.encode(),
                        value=payload,
                        **tracing.header_kwargs(),
                    )
            if ahead:
                metrics.REDRIVES.labels("ahead").inc(len(ahead))
            await inbound_log.mark_enqueued(state.pool, [r[0] for r in records])
    except (psycopg.Error, KafkaError, TimeoutError) as err:
        metrics.REDRIVES.labels("deferred").inc(len(messages))
        log.warning(
            "enqueue deferred to the re-driver",
            extra={"event_ids": [m.event_id for m in messages], "error": repr(err)},
        )
        return False
    return True


async def redrive_open_messages(state: GatewayState) -> None:
    """Forever: send due open messages again, abandon the hopeless, count the backlog."""
    settings = state.settings
    policy = redrive_policy(settings)
    last_prune = last_warning = 0.0
    while True:
        try:
            await redrive_once(state, policy)
            if time.monotonic() - last_prune > PRUNE_EVERY_S:
                await inbound_log.prune(state.pool, settings.inbound_log_keep_days)
                last_prune = time.monotonic()
        except asyncio.CancelledError:
            raise
        except Exception as err:  # Postgres or the broker is down: try again next time
            if time.monotonic() - last_warning > WARN_EVERY_S:
                log.warning("re-driver cannot run", extra={"error": repr(err)})
                last_warning = time.monotonic()
        await asyncio.sleep(settings.redrive_interval_s)


async def redrive_once(state: GatewayState, policy: inbound_log.RedrivePolicy) -> int:
    """One look: re-drive what is due; returns how many were sent again."""
    async with asyncio.timeout(state.settings.stage_timeout_s):
        state.backlog.update(await inbound_log.backlog(state.pool))
        due = await inbound_log.claim_due(state.pool, policy, state.settings.redrive_batch)
    sent = 0
    for item in due:
        if item.redrives > policy.max_redrives:
            await abandon(state, item)
            continue
        async with asyncio.timeout(state.settings.stage_timeout_s):
            await state.producer.send_and_wait(
                state.inbound_topic, key=item.conversation_id.encode(), value=item.payload
            )
        await inbound_log.mark_enqueued(state.pool, [item.event_id])
        metrics.REDRIVES.labels("sent").inc()
        sent += 1
    if sent:
        log.info("re-drove open messages", extra={"count": sent})
    return sent


async def abandon(state: GatewayState, item: inbound_log.Due) -> None:
    """Give up on a message no re-drive could settle: close it and keep a dead letter."""
    reason = f"not settled after {item.redrives - 1} re-drives"
    await db.record_dead_letter(
        state.pool, "redrive", reason, item.redrives, item.payload.decode("utf-8", "replace")
    )
    await inbound_log.settle(state.pool, item.event_id, inbound_log.Outcome.ABANDONED)
    metrics.REDRIVES.labels("abandoned").inc()
    log.error("abandoned an open message", extra={"event_id": item.event_id, "reason": reason})
