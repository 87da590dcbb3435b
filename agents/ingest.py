"""ingest: validate, drop channel duplicates, store, and attach conversation memory.

The ingest stage owns the conversation memory table: the customer's turns are written
here, the bot's replies and the handoffs by `agents.memory_events`, the human agents'
decisions by `agents.control`, all in this stage's consumer group.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterable
from typing import Any

from agents import guard
from agents.memory import remember_turn, restored, snapshot
from clawdesk import db, inbound_log, metrics, tracing
from clawdesk.app import app
from clawdesk.services import current, ready
from clawdesk.settings import app_settings
from schemas import AcceptedMessage, InboundMessage
from topics.streams import accepted_topic, inbound_topic

log = logging.getLogger(__name__)
STAGE = "ingest"

# Keyed by conversation id, co-partitioned with the inbound, replies, handoffs and
# control topics (same partition count): RocksDB locally, a changelog topic for recovery.
conversation_memory = app.Table(
    "conversation-memory", default=None, partitions=app_settings().topic_partitions
)


async def accept(raw: bytes) -> None:
    """Process one inbound event (raises on failure; `guard` routes the error)."""
    msg = InboundMessage.from_bytes(raw)
    services = current()
    if not await db.tenant_exists(services.pool, msg.tenant_id):
        raise guard.Rejected(f"unknown tenant {msg.tenant_id!r}")
    outcome = await db.record_inbound(services.pool, msg)
    if outcome is db.Inbound.DUPLICATE:
        metrics.DUPLICATES.labels(STAGE).inc()
        log.info("duplicate channel message dropped", extra={"id": msg.channel_message_id})
        await inbound_log.settle(services.pool, msg.event_id, inbound_log.Outcome.DUPLICATE)
        return
    stored = conversation_memory.get(msg.conversation_id)
    if stored is None:
        stored = await recover_memory(msg, services.settings.memory_turns)
    memory = snapshot(stored)  # what the conversation looked like before this message
    conversation_memory[msg.conversation_id] = remember_turn(
        stored,
        "customer",
        msg.text,
        msg.received_at,
        msg.event_id,
        services.settings.memory_turns,
    )
    if memory.handoff:
        # A human owns this conversation: the bot stays quiet (the inbox shows the turn).
        await inbound_log.settle(services.pool, msg.event_id, inbound_log.Outcome.HUMAN)
        return
    accepted = AcceptedMessage(**msg.lineage(), message=msg, memory=memory)
    await accepted_topic.send(
        key=msg.conversation_id.encode(), value=accepted.to_bytes(), headers=tracing.outgoing()
    )


async def recover_memory(msg: InboundMessage, max_turns: int) -> dict[str, Any] | None:
    """The memory of a conversation the table does not hold but Postgres knows (its
    changelog was lost with a memory-only broker, or a worker's state was dropped);
    None for a new conversation."""
    stored = await db.fetch_conversation(
        current().pool, msg.conversation_id, before_id=msg.event_id, limit=max_turns
    )
    if stored is None:
        return None
    metrics.MEMORY_RESTORED.inc()
    log.info("conversation memory rebuilt from postgres", extra={"id": msg.conversation_id})
    return restored(stored, max_turns)


@app.agent(inbound_topic)
async def accept_messages(messages: AsyncIterable[bytes]) -> None:
    """Accept each inbound customer message."""
    await ready()
    async for raw in messages:
        await guard.process(STAGE, raw, accept, guard.headers_of(messages))
