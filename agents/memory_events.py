"""The ingest stage's conversation memory, changed by what the other stages emit.

Replies and handoffs are keyed by conversation id like the inbound topic, so the ingest
worker that owns a conversation's memory also reads its replies and handoffs: the bot's
turn and the handoff flag are written where the memory lives, by the stage that owns it,
instead of the reply and handoff stages reaching into another stage's table.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterable, Callable

from pydantic import ValidationError

from agents import guard
from agents.ingest import conversation_memory
from agents.memory import mark_seen, remember_turn, seen, with_handoff, with_slots
from clawdesk.app import app
from clawdesk.ops import metrics
from clawdesk.services import current, ready
from schemas import Handoff, Reply
from topics.streams import handoff_topic, reply_topic

log = logging.getLogger(__name__)
STAGE = "memory"  # the label of its metrics and dead letters: a part of the ingest stage


def remember_reply(raw: bytes) -> None:
    """Add the bot's reply to the memory as a `bot` turn (idempotent per reply id).

    The turn is placed by the time the reply was composed: a customer message that came
    in meanwhile may have been remembered first. A human agent's reply is remembered
    from its control event (`agents.control`), not here.
    """
    reply = Reply.from_bytes(raw)
    if reply.author != "bot":
        return
    conv = reply.conversation_id
    memory = remember_turn(
        conversation_memory.get(conv),
        "bot",
        reply.text,
        reply.occurred_at,
        reply.reply_id,
        current().settings.memory_turns,
        in_time_order=True,
    )
    # The slots are the nlu stage's view of the conversation ("refund it" after an order
    # was named): the skills stage keeps its own copy for its decisions.
    memory = with_slots(memory, reply.slots)
    conversation_memory[conv] = {**memory, "language": reply.language or memory.get("language")}


def remember_handoff(raw: bytes) -> None:
    """Flag the conversation as a human's: from now on the bot stays quiet in it."""
    handoff = Handoff.from_bytes(raw)
    conv = handoff.conversation_id
    stored = conversation_memory.get(conv)
    if seen(stored, handoff.event_id):  # a redelivery: it may have been handed back since
        metrics.DUPLICATES.labels(STAGE).inc()
        return
    conversation_memory[conv] = mark_seen(with_handoff(stored, True), handoff.event_id)
    log.info("memory flagged as handed off", extra={"conversation_id": conv})


async def apply(raw: bytes, change: Callable[[bytes], None]) -> None:
    """Apply one change; a malformed event is dead-lettered (its message was answered or
    handed over already, so it is not settled or parked again from here)."""
    try:
        change(raw)
        metrics.MESSAGES_PROCESSED.labels(STAGE).inc()
    except ValidationError as exc:
        try:
            await guard.dead_letter(STAGE, raw, exc, 1)
        except Exception:  # a failed dead letter must not end the agent's loop
            log.exception("could not dead-letter a malformed event", extra={"stage": STAGE})
    except Exception:
        log.exception("could not apply a memory change", extra={"stage": STAGE})


@app.agent(reply_topic)
async def remember_replies(replies: AsyncIterable[bytes]) -> None:
    """Remember each bot reply as a turn of its conversation."""
    await ready()
    async for raw in replies:
        await apply(raw, remember_reply)


@app.agent(handoff_topic)
async def remember_handoffs(handoffs: AsyncIterable[bytes]) -> None:
    """Flag each handed-off conversation in memory."""
    await ready()
    async for raw in handoffs:
        await apply(raw, remember_handoff)
