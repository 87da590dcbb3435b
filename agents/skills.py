"""skills: run the action the intent asks for through the skill runner (allow-list,
confirmation, idempotency, audit), and hand the conversation to a human when it should.

The decisions are pure functions in `clawdesk.skills.dialogue`; this stage reads and
writes its own dialogue table (here, inside the per-event loop, where Faust allows table
writes), runs the chosen skill, and passes a `SkillResult` on to the reply stage. A
confirmation an LLM reply asked for comes back to it on the replies topic.
"""

from __future__ import annotations

import hashlib
import logging
from collections.abc import AsyncIterable
from typing import Any

from agents import guard
from agents.memory import dialogue, mark_seen, remember_slots, seen, with_dialogue
from clawdesk.app import app
from clawdesk.ops import metrics, tracing
from clawdesk.services import current, ready
from clawdesk.settings import AppSettings, app_settings
from clawdesk.skills.dialogue import (
    Conclusion,
    DialogueState,
    PendingAction,
    Policy,
    Turn,
    conclude,
    decide,
    replace_state,
    turn_of,
)
from clawdesk.skills.worker import (
    APP_EMAIL,
    skill_context,
    skill_runtime,
    use_runtime,
    verified_email,
)
from clawdesk.storage import db
from schemas import Handoff, Reply, RetrievalContext, SkillResult, SkillStatus
from topics.streams import context_topic, handoff_topic, reply_topic, skill_result_topic

log = logging.getLogger(__name__)
STAGE = "skills"

# The skills stage's own state per conversation: slots, language and the dialogue
# (pending confirmation, what it waits for, counters). Co-partitioned with the context
# topic it reads and the replies topic whose LLM proposals it records.
conversation_dialogue = app.Table(
    "conversation-dialogue", default=None, partitions=app_settings().topic_partitions
)

__all__ = [
    "APP_EMAIL",
    "conversation_dialogue",
    "run_skill",
    "skill_context",
    "skill_runtime",
    "use_runtime",
    "verified_email",
]


def policy_of(settings: AppSettings) -> Policy:
    """The dialogue limits from settings."""
    return Policy(
        confirm_ttl_s=settings.skill_confirmation_ttl_s,
        unclear_limit=settings.handoff_unclear_turns,
        failure_limit=settings.handoff_failed_skills,
    )


def handoff_event_id(inbound_event_id: str) -> str:
    """The handoff's event id, derived from the message that caused it, so a redelivered
    message yields the same handoff event (its consumer can drop the repeat)."""
    return "h-" + hashlib.sha256(inbound_event_id.encode()).hexdigest()[:32]


async def hand_off(context: RetrievalContext, reason: str) -> None:
    """Give the conversation to a human: mark it in Postgres and emit a handoff (the
    ingest stage flags its memory from that event, so the bot stays quiet)."""
    msg = context.nlu.accepted.message
    conv = context.conversation_id
    await db.set_conversation_status(current().pool, conv, "human")
    handoff = Handoff(
        **context.lineage(event_id=handoff_event_id(msg.event_id)),
        reason=reason,
        customer_id=msg.customer_id,
        last_message=msg.text,
    )
    await handoff_topic.send(
        key=conv.encode(), value=handoff.to_bytes(), headers=tracing.outgoing()
    )
    metrics.HANDOFFS.labels(reason).inc()
    log.info("handed off", extra={"conversation_id": conv, "reason": reason})


async def think(
    context: RetrievalContext, memory: dict[str, Any]
) -> tuple[Turn, Conclusion, dict[str, Any]]:
    """Decide, run the chosen skill (if any), and conclude — for one message. Also
    returns the arguments the skill was decided with (recorded as the decision)."""
    policy = policy_of(current().settings)
    msg = context.nlu.accepted.message
    turn = turn_of(context, memory.get("slots", {}), verified_email(msg))
    runtime = skill_runtime()
    decision = decide(turn, DialogueState.load(dialogue(memory)), policy, runtime.routes)
    if not decision.run or decision.skill is None:
        return turn, conclude(turn, decision, policy), dict(decision.args)
    outcome = await runtime.run(
        decision.skill,
        skill_context(context),
        decision.args,
        confirmed=decision.confirmed,
        key_event_id=decision.key_event_id or turn.event_id,
    )
    status = SkillStatus(outcome.status.value)
    concluded = conclude(turn, decision, policy, status, outcome.data, outcome.message)
    return turn, concluded, dict(decision.args)


async def run(raw: bytes) -> None:
    """Run the skill for one retrieval context and pass its result on."""
    context = RetrievalContext.from_bytes(raw)
    conv = context.conversation_id
    # Slots are remembered here, not in the batched nlu stage: Faust allows table
    # writes only while iterating a stream event by event.
    entities, language = context.nlu.entities, context.nlu.language
    memory = remember_slots(conversation_dialogue.get(conv), entities, language)
    _, conclusion, arguments = await think(context, memory)
    # Re-read: an LLM proposal may have been recorded while the skill ran; keep it.
    latest = remember_slots(conversation_dialogue.get(conv), entities, language)
    conversation_dialogue[conv] = with_dialogue(latest, conclusion.state.dump())
    if conclusion.handoff is not None:
        await hand_off(context, conclusion.handoff)
    result = SkillResult(
        **context.lineage(),
        context=context,
        skill=conclusion.skill,
        status=conclusion.status,
        data=conclusion.data,
        message=conclusion.message,
        arguments=arguments,
    )
    await skill_result_topic.send(
        key=conv.encode(), value=result.to_bytes(), headers=tracing.outgoing()
    )


@app.agent(context_topic)
async def run_skill(contexts: AsyncIterable[bytes]) -> None:
    """Run skills for each retrieval context."""
    await ready()
    async for raw in contexts:
        await guard.process(STAGE, raw, run, guard.headers_of(contexts))


def remember_proposal(raw: bytes) -> None:
    """Keep the side effect an LLM reply proposed as the dialogue's pending question,
    keyed by the message it answered as the skills stage keys its own, so the
    customer's "yes" runs it (once per reply)."""
    reply = Reply.from_bytes(raw)
    proposed = reply.proposed
    if proposed is None or not isinstance(proposed.get("args"), dict):
        return
    conv, marker = reply.conversation_id, f"proposed-{reply.reply_id}"
    stored = conversation_dialogue.get(conv)
    if seen(stored, marker):  # a redelivery: the question may have been answered since
        return
    pending = PendingAction(
        skill=str(proposed["skill"]),
        args=proposed["args"],
        origin_event_id=reply.in_reply_to,
        asked_at=reply.received_at,
        facts=dict(proposed.get("facts") or {}),
    )
    state = replace_state(DialogueState.load(dialogue(stored)), pending=pending)
    conversation_dialogue[conv] = mark_seen(with_dialogue(stored, state.dump()), marker)


@app.agent(reply_topic)
async def remember_proposals(replies: AsyncIterable[bytes]) -> None:
    """Record the confirmations LLM replies asked for in the dialogue state."""
    await ready()
    async for raw in replies:
        try:
            remember_proposal(raw)
        except Exception:  # a reply the dispatcher dead-letters if it is malformed
            log.warning("reply not read for a proposal", extra={"stage": STAGE}, exc_info=True)
