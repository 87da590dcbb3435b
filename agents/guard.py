"""Run one event's work so that no exception escapes an agent's loop.

Transient failures are retried with backoff (tenacity); an event that still fails,
or that can never succeed (malformed, rejected), goes to the dead-letter topic with
the stage and the reason, and the stream moves on to the next event.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable

import psycopg
import redis
from tenacity import (
    AsyncRetrying,
    RetryError,
    retry_if_exception_type,
    stop_after_attempt,
    wait_exponential,
)

from clawdesk import metrics
from clawdesk.services import current
from schemas import DeadLetter

log = logging.getLogger(__name__)


class Rejected(Exception):
    """The event is well-formed but can never be processed (e.g. unknown tenant)."""


# Only failures that may pass on their own are retried; anything else (a malformed
# event, a bug) would fail the same way again, so it is dead-lettered at once.
_TRANSIENT = (OSError, TimeoutError, psycopg.OperationalError, redis.ConnectionError)


async def dead_letter(stage: str, raw: bytes, error: BaseException, attempts: int) -> None:
    """Publish the event with its error to the dead-letter topic (and Postgres)."""
    from topics.streams import dead_letter_topic

    reason = f"{type(error).__name__}: {error}"[:2000]
    letter = DeadLetter(
        event=raw.decode("utf-8", "replace"), error=reason, stage=stage, attempts=attempts
    )
    metrics.DEAD_LETTERS.labels(stage).inc()
    metrics.ERRORS.labels(stage, type(error).__name__).inc()
    log.warning("dead-lettered", extra={"stage": stage, "reason": reason, "attempts": attempts})
    await dead_letter_topic.send(key=stage.encode(), value=letter.to_bytes())
    try:
        from clawdesk import db

        await db.record_dead_letter(current().pool, stage, reason, attempts, letter.event)
    except Exception:  # the topic has it; Postgres is a convenience copy
        log.exception("could not store dead letter in postgres")


async def process(stage: str, raw: bytes, work: Callable[[bytes], Awaitable[None]]) -> bool:
    """Do `work(raw)` with a timeout and retries; dead-letter it on final failure.

    Returns whether the work succeeded. Never raises (but for cancellation).
    """
    settings = current().settings
    started = time.perf_counter()
    attempts = 0
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
        try:
            await dead_letter(stage, raw, exc, max(attempts, 1))
        except Exception:
            log.exception("could not dead-letter an event", extra={"stage": stage})
        return False
    metrics.MESSAGES_PROCESSED.labels(stage).inc()
    metrics.STAGE_LATENCY.labels(stage).observe(time.perf_counter() - started)
    return True
