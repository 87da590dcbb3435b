"""ingest: validate, drop channel duplicates, store, and attach conversation memory.

A channel's conventional events end here (`clawdesk.conventions`): a follow, /start or
/help is answered with the tenant's welcome, an unfollow and an edit of a message
already answered are recorded only."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterable
from typing import Any

from agents import guard
from agents.memory import conversation_memory, remember_turn, restored, snapshot
from clawdesk import conventions, db, inbound_log, metrics
from clawdesk.app import app
from clawdesk.services import current, ready
from schemas import AcceptedMessage, ConversationSnapshot, InboundMessage, MessageKind
from topics.streams import accepted_topic, inbound_topic, reply_topic

log = logging.getLogger(__name__)
STAGE = "ingest"


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
    if msg.kind is MessageKind.UNFOLLOW:
        # Recorded (the inbox shows it); no one is there to answer.
        await inbound_log.settle(services.pool, msg.event_id, inbound_log.Outcome.RECORDED)
        return
    if msg.edit_of and await db.was_answered(services.pool, msg, msg.edit_of):
        # The customer corrected a message the bot already answered: recorded only.
        log.info("edit of an answered message recorded", extra={"id": msg.channel_message_id})
        await inbound_log.settle(services.pool, msg.event_id, inbound_log.Outcome.RECORDED)
        return
    stored = conversation_memory.get(msg.conversation_id)
    if stored is None:
        stored = await recover_memory(msg, services.settings.memory_turns)
    memory = snapshot(stored)  # what the conversation looked like before this message
    turns = services.settings.memory_turns
    if msg.text and not conventions.is_welcomed(msg):
        stored = remember_turn(stored, "customer", msg.text, msg.received_at, msg.event_id, turns)
        conversation_memory[msg.conversation_id] = stored
    if memory.handoff:
        # A human owns this conversation: the bot stays quiet (the inbox shows the turn).
        await inbound_log.settle(services.pool, msg.event_id, inbound_log.Outcome.HUMAN)
        return
    if conventions.is_welcomed(msg):
        await welcome(msg, memory, stored)
        return
    accepted = AcceptedMessage(**msg.lineage(), message=msg, memory=memory)
    await accepted_topic.send(key=msg.conversation_id.encode(), value=accepted.to_bytes())


async def welcome(
    msg: InboundMessage, memory: ConversationSnapshot, stored: dict[str, Any] | None
) -> None:
    """Answer a follow or a /start, /help with the tenant's welcome, past the NLU."""
    services = current()
    language = conventions.language_of(msg, memory)
    tenant_welcome = await db.tenant_welcome(services.pool, msg.tenant_id)
    text = conventions.welcome_text(language, tenant_welcome)
    reply = conventions.direct_reply(msg, text, language, conventions.WELCOME_INTENT)
    conversation_memory[msg.conversation_id] = remember_turn(
        stored, "bot", text, reply.occurred_at, reply.reply_id, services.settings.memory_turns
    )
    metrics.CONVENTIONS.labels(msg.channel.value, msg.kind.value).inc()
    await reply_topic.send(key=msg.conversation_id.encode(), value=reply.to_bytes())


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
        await guard.process(STAGE, raw, accept)
