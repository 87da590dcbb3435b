"""control: apply what human agents do to a conversation: hand it back to the bot, and
reply (the reply becomes an `agent` turn of the conversation memory).

Part of the ingest stage, which owns the memory: the control topic is keyed by
conversation id like the memory table, so the flag is cleared and the turn written on the
partition that owns the conversation, event by event.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterable
from typing import Any

from agents import guard
from agents.ingest import conversation_memory
from agents.memory import mark_seen, remember_turn, seen, with_handoff
from clawdesk.app import app
from clawdesk.handoff import records as store
from clawdesk.ops import metrics
from clawdesk.services import current, ready
from schemas import ControlAction, ConversationControl
from topics.streams import control_topic

log = logging.getLogger(__name__)
STAGE = "control"


def remember_agent_reply(
    memory: dict[str, Any] | None, control: ConversationControl
) -> dict[str, Any]:
    """Memory with the agent's reply as an `agent` turn at the time it was sent, so the
    bot has the human's side of the conversation once it takes over again."""
    return remember_turn(
        memory,
        "agent",
        control.text,
        control.occurred_at,
        control.event_id,
        current().settings.memory_turns,
        in_time_order=True,
    )


async def apply(raw: bytes) -> None:
    """Apply one control event."""
    control = ConversationControl.from_bytes(raw)
    conv = control.conversation_id
    stored = conversation_memory.get(conv)
    if seen(stored, control.event_id):
        metrics.DUPLICATES.labels(STAGE).inc()
        return
    memory = dict(stored or {})
    if control.action is ControlAction.AGENT_REPLY:
        memory = remember_agent_reply(stored, control)
    elif control.action is ControlAction.HAND_BACK:
        if await store.hand_back(current().pool, conv, control.occurred_at):
            memory = with_handoff(stored, False)
            log.info(
                "conversation handed back to the bot",
                extra={"conversation_id": conv, "agent_id": control.agent_id},
            )
        else:
            log.info(
                "hand-back ignored: the conversation was handed off again since",
                extra={"conversation_id": conv, "agent_id": control.agent_id},
            )
    conversation_memory[conv] = mark_seen(memory, control.event_id)


@app.agent(control_topic)
async def apply_controls(controls: AsyncIterable[bytes]) -> None:
    """Apply each control event to its conversation."""
    await ready()
    async for raw in controls:
        await guard.process(STAGE, raw, apply, guard.headers_of(controls))
