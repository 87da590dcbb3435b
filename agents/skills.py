"""skills: run the action the intent asks for through the skill runner (allow-list,
confirmation, idempotency, audit), and hand the conversation to a human when it should.

The decisions are pure functions in `clawdesk.skills.dialogue`; this stage reads and
writes conversation memory (here, inside the per-event loop, where Faust allows table
writes), runs the chosen skill, and passes a `SkillResult` on to the reply stage.
"""

from __future__ import annotations

import hashlib
import logging
from collections.abc import AsyncIterable
from typing import Any

from agents import guard
from agents.memory import (
    conversation_memory,
    dialogue,
    remember_slots,
    with_dialogue,
    with_handoff,
)
from clawdesk import db, metrics
from clawdesk.app import app
from clawdesk.services import Services, current, ready
from clawdesk.settings import AppSettings, connection_settings
from clawdesk.skills.base import SkillContext
from clawdesk.skills.dialogue import (
    Conclusion,
    DialogueState,
    Policy,
    Turn,
    conclude,
    decide,
    turn_of,
)
from clawdesk.skills.runtime import SkillRuntime
from schemas import Channel, Handoff, InboundMessage, RetrievalContext, SkillResult, SkillStatus
from topics.streams import context_topic, handoff_topic, skill_result_topic

log = logging.getLogger(__name__)
STAGE = "skills"
APP_EMAIL = "app.email"  # in-app metadata: the signed-in user's e-mail, from the app backend

_runtime: tuple[Services, SkillRuntime] | None = None


def skill_runtime() -> SkillRuntime:
    """The worker's skill runtime, built on first use from the installed services."""
    global _runtime
    services = current()
    if _runtime is None or _runtime[0] is not services:
        redis_url = connection_settings().redis_url
        _runtime = (
            services,
            SkillRuntime.from_settings(services.settings, services.pool, redis_url),
        )
    return _runtime[1]


def use_runtime(runtime: SkillRuntime) -> None:
    """Run skills with `runtime` for the installed services (tests, embedding apps)."""
    global _runtime
    _runtime = (current(), runtime)


def verified_email(msg: InboundMessage) -> str | None:
    """An e-mail the channel vouches for: the sender of an e-mail, or the address an
    in-app backend (authenticated by its API key) gives for its signed-in user. Never
    an address typed in the chat."""
    if msg.channel is Channel.EMAIL and "@" in msg.customer_id:
        return msg.customer_id
    if msg.channel is Channel.INAPP:
        return msg.metadata.get(APP_EMAIL) or None
    return None


def policy_of(settings: AppSettings) -> Policy:
    """The dialogue limits from settings."""
    return Policy(
        confirm_ttl_s=settings.skill_confirmation_ttl_s,
        unclear_limit=settings.handoff_unclear_turns,
        failure_limit=settings.handoff_failed_skills,
    )


def skill_context(context: RetrievalContext) -> SkillContext:
    """Who the skill acts for; the runtime adds the providers and sources."""
    msg = context.nlu.accepted.message
    return SkillContext(
        tenant_id=context.tenant_id,
        conversation_id=context.conversation_id,
        customer_id=msg.customer_id,
        customer_email=verified_email(msg),
        customer_name=msg.metadata.get("customer_name"),
        language=context.nlu.language or "en",
    )


def handoff_event_id(inbound_event_id: str) -> str:
    """The handoff's event id, derived from the message that caused it, so a redelivered
    message yields the same handoff event (its consumer can drop the repeat)."""
    return "h-" + hashlib.sha256(inbound_event_id.encode()).hexdigest()[:32]


async def hand_off(context: RetrievalContext, reason: str) -> None:
    """Give the conversation to a human: flag memory, mark it in Postgres, emit a handoff."""
    msg = context.nlu.accepted.message
    conv = context.conversation_id
    conversation_memory[conv] = with_handoff(conversation_memory.get(conv), True)
    await db.set_conversation_status(current().pool, conv, "human")
    handoff = Handoff(
        **context.lineage(event_id=handoff_event_id(msg.event_id)),
        reason=reason,
        customer_id=msg.customer_id,
        last_message=msg.text,
    )
    await handoff_topic.send(key=conv.encode(), value=handoff.to_bytes())
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
    decision = decide(turn, DialogueState.load(dialogue(memory)), policy)
    if not decision.run or decision.skill is None:
        return turn, conclude(turn, decision, policy), dict(decision.args)
    outcome = await skill_runtime().run(
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
    memory = remember_slots(conversation_memory.get(conv), entities, language)
    _, conclusion, arguments = await think(context, memory)
    # Re-read: ingest may have added a turn while the skill ran; keep it, set ours.
    latest = remember_slots(conversation_memory.get(conv), entities, language)
    conversation_memory[conv] = with_dialogue(latest, conclusion.state.dump())
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
    await skill_result_topic.send(key=conv.encode(), value=result.to_bytes())


@app.agent(context_topic)
async def run_skill(contexts: AsyncIterable[bytes]) -> None:
    """Run skills for each retrieval context."""
    await ready()
    async for raw in contexts:
        await guard.process(STAGE, raw, run)


@app.on_before_shutdown.connect  # type: ignore[arg-type]
async def close_skill_runtime(sender: object, **_: object) -> None:
    """Close the provider clients when the worker stops."""
    if _runtime is not None:
        await _runtime[1].aclose()
