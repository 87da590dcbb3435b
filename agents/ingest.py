"""ingest: validate, drop channel duplicates, store, and attach conversation memory.

A channel's conventional events end here (`connectors.conventions`): a follow, /start or
/help is answered with the tenant's welcome, an unfollow and an edit of a message
already answered are recorded only. Files are fetched and stored here
(`clawdesk.storage.attachments`); one sent without text is acknowledged, a refused one
explained.

The ingest stage owns the conversation memory table: the customer's turns are written
here, the bot's replies and the handoffs by `agents.memory_events`, the human agents'
decisions by `agents.control`, all in this stage's consumer group.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterable
from typing import Any

from agents import guard
from agents.memory import remember_turn, restored, snapshot
from clawdesk.app import app
from clawdesk.nlu.language import detect_language
from clawdesk.ops import metrics, tracing
from clawdesk.services import current, ready
from clawdesk.settings import app_settings
from clawdesk.storage import attachments, db, decisions, inbound_log
from clawdesk.tenants import tenant_profile
from connectors import conventions
from schemas import AcceptedMessage, ConversationSnapshot, InboundMessage, MessageKind
from topics.streams import accepted_topic, inbound_topic, reply_topic

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
    # Files are taken even while a human owns the conversation: the agent sees them.
    taken = await take_files(msg) if msg.attachments else []
    if taken:
        msg = msg.model_copy(update={"attachments": [t.attachment for t in taken]})
    if msg.text and not conventions.is_welcomed(msg):
        stored = remember_turn(stored, "customer", msg.text, msg.received_at, msg.event_id, turns)
        conversation_memory[msg.conversation_id] = stored
    if memory.handoff:
        # A human owns this conversation: the bot stays quiet (the inbox shows the turn).
        await decisions.record(services.pool, decisions.of_quiet(msg))
        await inbound_log.settle(services.pool, msg.event_id, inbound_log.Outcome.HUMAN)
        return
    if conventions.is_welcomed(msg):
        await welcome(msg, memory, stored)
        return
    if taken and await answer_files(msg, memory, stored, taken):
        return
    accepted = AcceptedMessage(**msg.lineage(), message=msg, memory=memory)
    await accepted_topic.send(
        key=msg.conversation_id.encode(), value=accepted.to_bytes(), headers=tracing.outgoing()
    )


async def welcome(
    msg: InboundMessage, memory: ConversationSnapshot, stored: dict[str, Any] | None
) -> None:
    """Answer a follow or a /start, /help with the tenant's welcome, past the NLU."""
    services = current()
    language = conventions.language_of(msg, memory)
    tenant_welcome = await db.tenant_welcome(services.pool, msg.tenant_id)
    text = conventions.welcome_text(language, tenant_welcome, tenant_profile(msg.tenant_id))
    reply = conventions.direct_reply(msg, text, language, conventions.WELCOME_INTENT)
    conversation_memory[msg.conversation_id] = remember_turn(
        stored, "bot", text, reply.occurred_at, reply.reply_id, services.settings.memory_turns
    )
    metrics.CONVENTIONS.labels(msg.channel.value, msg.kind.value).inc()
    await reply_topic.send(key=msg.conversation_id.encode(), value=reply.to_bytes())


async def take_files(msg: InboundMessage) -> list[attachments.Taken]:
    """Fetch, check and store the message's files (bounded: a slow provider must not
    stall the stage; a timeout parks or retries the message like any transient error)."""
    services = current()
    settings = services.settings
    async with asyncio.timeout(settings.attachment_fetch_timeout_s):
        return await attachments.take(
            msg,
            pool=services.pool,
            store=attachments.store_for(settings),
            settings=settings,
            channels=services.channels,
        )


async def answer_files(
    msg: InboundMessage,
    memory: ConversationSnapshot,
    stored: dict[str, Any] | None,
    taken: list[attachments.Taken],
) -> bool:
    """Tell the customer about files refused, and acknowledge files sent without text;
    True when that is the whole answer (the message carries no text to read)."""
    services = current()
    language = detect_language(msg.text) if msg.text else conventions.language_of(msg, memory)
    refused = [t for t in taken if t.refused is not None]
    replies = []
    if refused:
        reason = refused[0].refused.value if refused[0].refused else ""
        text = conventions.refused_text(language, reason, services.settings.attachment_max_bytes)
        # A caption is still answered by the pipeline: this notice has its own id.
        suffix = "-file" if msg.text else ""
        replies.append(
            conventions.direct_reply(msg, text, language, conventions.REFUSED_INTENT, suffix=suffix)
        )
    kept = attachments.stored_only(taken)
    if not msg.text and kept and not refused:
        text = conventions.received_text(language, [a.kind for a in kept])
        replies.append(conventions.direct_reply(msg, text, language, conventions.RECEIVED_INTENT))
    turns = services.settings.memory_turns
    for reply in replies:
        stored = remember_turn(stored, "bot", reply.text, reply.occurred_at, reply.reply_id, turns)
        conversation_memory[msg.conversation_id] = stored
        await reply_topic.send(key=msg.conversation_id.encode(), value=reply.to_bytes())
    return not msg.text


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
