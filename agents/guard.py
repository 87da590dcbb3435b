"""Run one event's work so that no exception escapes an agent's loop.

Transient failures are retried with backoff (tenacity). An event that still fails
because a dependency is down (Postgres, Redis, the broker, a timeout) is *parked*: its
customer message stays open in the inbound log (`clawdesk.storage.inbound_log`), which re-drives
it from the start once `park_retry_s` has passed, and again with backoff, until the
dependency is back and it is answered. Only an event that can never succeed (malformed,
rejected, a bug) goes to the dead-letter topic with the stage and the reason, and its
message is settled as dead-lettered. Either way the stream moves on to the next event.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable
from typing import Any

import psycopg
import redis
from aiokafka.errors import KafkaError
from tenacity import (
    AsyncRetrying,
    RetryError,
    retry_if_exception_type,
    stop_after_attempt,
    wait_exponential,
)

from clawdesk.ops import metrics, tracing
from clawdesk.services import current
from clawdesk.storage import deadletters, inbound_log
from schemas import DeadLetter
from topics.streams import dead_letter_topic

log = logging.getLogger(__name__)


class Rejected(Exception):
    """The event is well-formed but can never be processed (e.g. unknown tenant)."""


# Only failures that may pass on their own are retried; anything else (a malformed
# event, a bug) would fail the same way again, so it is dead-lettered at once.
_TRANSIENT = (OSError, TimeoutError, psycopg.OperationalError, redis.ConnectionError)
PARK_TIMEOUT_S = 3.0  # bound on noting a parked event (Postgres may be what is down)


async def dead_letter(stage: str, raw: bytes, error: BaseException, attempts: int) -> None:
    """Publish the event with its error to the dead-letter topic, and store it durably:
    in Postgres, or in the worker's local spool while Postgres fails.

    The letter is bounded and escaped (`clawdesk.storage.deadletters`) so that neither the
    broker nor Postgres can refuse it. The topic is memory-only on the embedded broker,
    so the durable copy is written whether or not the publish worked.
    """
    services = current()
    item = deadletters.make_letter(stage, raw, error, attempts, services.settings)
    letter: DeadLetter = item.letter
    metrics.DEAD_LETTERS.labels(stage).inc()
    metrics.ERRORS.labels(stage, type(error).__name__).inc()
    log.warning(
        "dead-lettered",
        extra={
            "stage": stage,
            "reason": letter.error,
            "attempts": attempts,
            "letter_id": letter.letter_id,
            "event_bytes": letter.event_bytes,
        },
    )
    timeout_s = services.settings.stage_timeout_s
    try:
        if not await deadletters.publish(dead_letter_topic, letter, timeout_s):
            log.warning(
                "dead letter not acknowledged by the broker in time", extra={"stage": stage}
            )
    except Exception:
        log.exception("could not publish dead letter", extra={"letter_id": letter.letter_id})
    spool = deadletters.spool_of(services.settings)
    await deadletters.store(services.pool, item, spool, timeout_s)


async def park(stage: str, raw: bytes, error: BaseException) -> bool:
    """Leave the event's customer message open in the inbound log, to be re-driven when
    the dependency is back; False when it has none there (then it is dead-lettered)."""
    event_id = inbound_log.inbound_event_id(raw)
    if event_id is None:
        return False
    reason = f"{type(error).__name__}: {error}"
    services = current()
    try:
        async with asyncio.timeout(PARK_TIMEOUT_S):
            logged = await inbound_log.park(
                services.pool, event_id, stage, reason, services.settings.park_retry_s
            )
    except Exception as err:
        # Postgres itself is down: the message was logged when the gateway acknowledged
        # it, and the log re-drives it on its own schedule once Postgres answers.
        log.warning("could not note a parked event", extra={"stage": stage, "error": repr(err)})
        logged = True
    if logged:
        metrics.PARKED.labels(stage, type(error).__name__).inc()
        log.warning("parked", extra={"stage": stage, "event_id": event_id, "reason": reason})
    return logged


async def settle_dead_lettered(raw: bytes) -> None:
    """Close the event's customer message in the inbound log: it can never succeed."""
    event_id = inbound_log.inbound_event_id(raw)
    if event_id is None:
        return
    try:
        async with asyncio.timeout(PARK_TIMEOUT_S):
            await inbound_log.settle(current().pool, event_id, inbound_log.Outcome.DEAD_LETTERED)
    except Exception as err:  # it is re-driven and dead-lettered again: nothing is lost
        log.warning("could not settle a dead letter", extra={"error": repr(err)})


def headers_of(stream: Any) -> Any:
    """The record headers of the event an agent's stream is on (for its trace context);
    None when tracing is off, so nothing is read."""
    if not tracing.enabled():
        return None
    event = getattr(stream, "current_event", None)
    return getattr(event, "headers", None)


async def process(
    stage: str, raw: bytes, work: Callable[[bytes], Awaitable[None]], headers: Any = None
) -> bool:
    """Do `work(raw)` with a timeout and retries; dead-letter it on final failure.

    With tracing on, the work is a span of the trace in the record's `headers`.
    Returns whether the work succeeded. Never raises (but for cancellation).
    """
    with tracing.span(stage, headers, **{"clawdesk.stage": stage}):
        return await _process(stage, raw, work)


async def _process(stage: str, raw: bytes, work: Callable[[bytes], Awaitable[None]]) -> bool:
    settings = current().settings
    started = time.perf_counter()
    attempts = 0
    in_flight = metrics.IN_FLIGHT.labels(stage)
    in_flight.inc()
    try:
        async for attempt in AsyncRetrying(
            stop=stop_after_attempt(settings.max_attempts),
            wait=wait_exponential(multiplier=0.1, max=2),
            retry=retry_if_exception_type(_TRANSIENT),
            reraise=True,
        ):
            with attempt:
                attempts = attempt.retry_state.attempt_number
                await asyncio.wait_for(work(raw), timeout=settings.stage_timeout_s)
    except asyncio.CancelledError:
        raise
    except (Exception, RetryError) as exc:
        if isinstance(exc, (*_TRANSIENT, KafkaError)) and await park(stage, raw, exc):
            return False
        try:
            await dead_letter(stage, raw, exc, max(attempts, 1))
        except Exception:
            log.exception("could not dead-letter an event", extra={"stage": stage})
        await settle_dead_lettered(raw)
        return False
    finally:
        in_flight.dec()
    metrics.MESSAGES_PROCESSED.labels(stage).inc()
    metrics.STAGE_LATENCY.labels(stage).observe(time.perf_counter() - started)
    return True
