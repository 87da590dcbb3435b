"""handoff: every handoff reaches the agent inbox and gets a ticket, however long that takes.

The agent records the handoff in Postgres (once per event id; the conversation becomes
a human's) and makes a first attempt at the Zendesk ticket; the ingest stage, which owns
the conversation memory, flags it from the same event so the bot stays quiet. A timer
on every worker retries the pending tickets on the schedule stored with them, so a
restart or a Zendesk outage loses none; its first tick on a worker started with Zendesk
configured also reopens the recent handoffs recorded while it was not (`not_configured`).
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterable

from agents import guard
from clawdesk.app import app
from clawdesk.handoff import records as store
from clawdesk.handoff.tickets import HandoffTickets
from clawdesk.ops import metrics
from clawdesk.services import current, ready
from clawdesk.settings import app_settings
from schemas import Handoff
from topics.streams import handoff_topic

log = logging.getLogger(__name__)
STAGE = "handoff"


def tickets() -> HandoffTickets:
    """This worker's ticket machinery: the installed services' (built with them)."""
    return current().handoff_tickets()


async def take_over(raw: bytes) -> None:
    """Record one handoff, keep the bot quiet, and try to open its ticket."""
    handoff = Handoff.from_bytes(raw)
    desk = tickets()
    row = await store.record_handoff(desk.pool, handoff, desk.lease_s)
    if row is None:  # a redelivery: its conversation may have been handed back since
        metrics.DUPLICATES.labels(STAGE).inc()
        return
    conv = handoff.conversation_id
    # The ingest stage flags the conversation's memory from the same event
    # (agents.memory_events): the bot stays quiet in it from then on.
    log.info(
        "conversation handed to a human",
        extra={"event_id": handoff.event_id, "conversation_id": conv, "reason": handoff.reason},
    )
    await desk.attempt(row)


@app.agent(handoff_topic)
async def open_tickets(handoffs: AsyncIterable[bytes]) -> None:
    """Take over each handed-off conversation."""
    await ready()
    async for raw in handoffs:
        await guard.process(STAGE, raw, take_over, guard.headers_of(handoffs))


async def retry_pending() -> None:
    """One tick of the retry timer: retry the pending tickets that are due (the first
    tick also reopens `not_configured` ones if Zendesk is configured now). Errors are
    logged: a timer that raised would stop retrying for good."""
    try:
        batch = current().settings.handoff_retry_batch
    except RuntimeError:
        return  # services are still starting
    try:
        await tickets().retry_due(batch)
    except Exception:
        log.exception("retrying handoff tickets failed; trying again next tick")


@app.timer(interval=app_settings().handoff_retry_interval_s)
async def retry_tickets() -> None:
    """Retry the pending tickets that are due, every few seconds."""
    await retry_pending()
