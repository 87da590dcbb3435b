"""reply: a grounded reply from the KB passage and/or the skill result, in the
customer's language. It never invents an order status: it quotes the shop's.

Offline (the default) the reply is composed from templates. In LLM mode
(`clawdesk.llm`, on when an endpoint and key are configured) the model writes it from
the same passages and results, citing them, and may call the tenant's allowed skills
as tools (through the skills stage's runtime); whenever it cannot (timeout, errors,
open circuit, token cap), the offline composition is sent instead. A refund or
cancellation the model proposes is kept as the dialogue's pending question, so it runs
only on the customer's "yes" (skills stage)."""

from __future__ import annotations

from collections.abc import AsyncIterable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from agents import guard
from agents.memory import slots_of
from clawdesk.app import app
from clawdesk.kb.chat_text import chat_text
from clawdesk.ops import metrics, tracing
from clawdesk.services import current, ready
from clawdesk.skills.render import render as render_skill
from clawdesk.skills.worker import skill_context, skill_runtime
from clawdesk.storage import db, decisions, inbound_log
from clawdesk.storage.cache import LayeredCache, question_digest
from clawdesk.tenants import tenant_profile
from schemas import Reply, SkillResult, SkillStatus, TurnOutcome
from topics.streams import reply_topic, skill_result_topic

if TYPE_CHECKING:
    from clawdesk.llm import LlmAnswer, LlmReplier, ToolBox
    from clawdesk.settings import AppSettings
    from clawdesk.skills import SkillContext, SkillOutcome
    from clawdesk.storage.cache import LayeredCache

STAGE = "reply"

TEXT = {
    "en": {
        "greeting": "Hello! I'm {assistant}. Ask me about orders, shipping, "
        "returns, refunds, payment or your account.",
        "thanks": "You're welcome! Anything else I can help with?",
        "goodbye": "Thanks for contacting {name}. Have a great day!",
        "clarify": "I'm not sure I understood. Could you rephrase, or tell me whether it's "
        "about an order, shipping, returns, refunds, payment or your account?",
        "source": "Source",
    },
    "zh": {
        "greeting": "您好!我是{assistant},可以帮您查询订单、物流、退换货、退款、支付和账户问题。",
        "thanks": "不客气!还有其他可以帮您的吗?",
        "goodbye": "感谢您联系{name},祝您生活愉快!",
        "clarify": "抱歉,我没有完全理解。您能换个说法吗?或者告诉我是关于订单、物流、退换货、退款、支付还是账户的问题?",
        "source": "来源",
    },
}


@dataclass(frozen=True)
class Composed:
    """A reply's text and what it rests on."""

    text: str
    sources: list[str] = field(default_factory=list)
    handoff: bool = False
    llm: bool = False  # written by the LLM (else by the templates)
    pending: SkillOutcome | None = None  # a side effect the LLM proposed, to be confirmed
    tool_status: SkillStatus | None = None  # how the LLM's last tool call ended, if any


plain = chat_text  # the passage as a customer sees it


def kb_answer(result: SkillResult, t: dict[str, str]) -> Composed:
    """The best knowledge-base passage as chat text, with its source."""
    hit = result.context.hits[0]
    return Composed(
        f"{plain(hit.text)}\n\n{t['source']}: {hit.title} › {hit.section}", [hit.doc_id]
    )


def compose(result: SkillResult) -> Composed:
    """Choose and fill the reply for a skill result (pure). Skill results (order, parcel,
    confirmation question, refund, handoff...) are rendered by `clawdesk.skills.render`.
    The intent is taken as the nlu stage decided it: that stage alone applies the
    confidence floor (per model: see `TenantNlu.min_confidence_for`)."""
    nlu = result.context.nlu
    t = TEXT["zh" if nlu.language == "zh" else "en"]
    rendered = render_skill(result)
    if rendered is not None:
        if rendered.with_kb and result.context.answerable:
            kb = kb_answer(result, t)
            return Composed(f"{kb.text}\n\n{rendered.text}", [*kb.sources, *rendered.sources])
        return Composed(rendered.text, rendered.sources, handoff=rendered.handoff)
    if nlu.intent in ("greeting", "thanks", "goodbye"):
        # The tenant's names come from its profile (configuration), not from code.
        names = tenant_profile(result.tenant_id).names(nlu.language or "en")
        return Composed(t[nlu.intent].format(**names))
    if result.context.answerable:
        return kb_answer(result, t)
    return Composed(t["clarify"])


def from_llm(answer: LlmAnswer, language: str) -> Composed:
    """The LLM's answer with the passages it cited listed under it, as offline replies
    list theirs (numbers as in the prompt)."""
    t = TEXT["zh" if language == "zh" else "en"]
    text = chat_text(answer.text)  # chat bubbles show Markdown as raw marks
    if answer.cited:
        cites = "; ".join(f"[{n}] {h.title} › {h.section}" for n, h in answer.cited)
        text = f"{text}\n\n{t['source']}: {cites}"
    # OutcomeStatus values are SkillStatus values: the last tool call's status says
    # whether the LLM's answer rests on a skill that worked.
    last = answer.tool_outcomes[-1].status.value if answer.tool_outcomes else None
    return Composed(
        text,
        list(answer.sources),
        llm=True,
        pending=answer.pending,
        tool_status=SkillStatus(last) if last else None,
    )


SMALL_TALK = frozenset({"greeting", "thanks", "goodbye"})
_PENDING = frozenset(
    {SkillStatus.NEEDS_INPUT, SkillStatus.NEEDS_CONFIRMATION, SkillStatus.IN_PROGRESS}
)


def _skill_outcome(status: SkillStatus) -> TurnOutcome:
    if status is SkillStatus.OK:
        return TurnOutcome.SKILL_RESOLVED
    return TurnOutcome.SKILL_PENDING if status in _PENDING else TurnOutcome.SKILL_FAILED


def turn_outcome(result: SkillResult, composed: Composed) -> TurnOutcome:
    """What this reply did for the customer (pure). It follows the choice `compose`
    made (a skill that spoke, then small talk, then the KB, else clarify), so offline
    and LLM replies to the same result count alike."""
    if composed.handoff or result.skill == "handoff":
        return TurnOutcome.HANDOFF
    if composed.pending is not None:  # the LLM proposed a side effect: awaiting "yes"
        return TurnOutcome.SKILL_PENDING
    if result.skill is not None and render_skill(result) is not None:
        # A confirmation the customer declined ends the request as they asked; one that
        # expired did nothing, and they have to ask again.
        ended = result.data.get("dialogue")
        if ended is not None:
            return TurnOutcome.SKILL_RESOLVED if ended == "declined" else TurnOutcome.SKILL_FAILED
        return _skill_outcome(result.status)
    if composed.tool_status is not None:
        return _skill_outcome(composed.tool_status)
    if result.context.nlu.intent in SMALL_TALK:
        return TurnOutcome.SMALL_TALK
    if result.context.answerable or (composed.llm and composed.sources):
        return TurnOutcome.KB_ANSWER
    return TurnOutcome.CLARIFY


def answer_key(result: SkillResult, settings: AppSettings) -> str | None:
    """The cache key of an LLM answer that rests on the question and the KB alone, or
    None when it may not be shared: a skill ran, or earlier turns shape the answer.

    The key carries the KB version and the LLM model, so a re-ingest or a new model
    never serves an old answer."""
    context = result.context
    if result.skill is not None or context.nlu.accepted.memory.turns:
        return None
    return LayeredCache.key(
        "answer",
        result.tenant_id,
        context.kb_version,
        settings.llm_model,
        context.nlu.language,
        question_digest(context.nlu.accepted.message.text),
    )


async def compose_any(
    result: SkillResult,
    settings: AppSettings,
    llm: LlmReplier | None,
    reply_id: str,
    *,
    tools: ToolBox | None = None,
    ctx: SkillContext | None = None,
    cache: LayeredCache | None = None,
) -> Composed:
    """The reply to one skill result: the LLM's when LLM mode is on, the reply is its
    to write (`for_llm`) and it answers in time with something grounded (a passage
    cited or a tool used); else the offline composition. A handoff notice is always
    the template's.

    With a `cache`, an LLM answer that depends on the question and the KB alone (see
    `answer_key`) is reused for the same question; answers that used tools or propose
    a side effect are never cached."""
    offline = compose(result)
    if llm is None or offline.handoff or not for_llm(result):
        return offline
    from clawdesk.llm import Fallback  # deferred: openai, ~0.4-2 s; LLM mode only

    key = answer_key(result, settings) if cache is not None else None
    if cache is not None and key is not None:
        hit = await cache.get(key)
        if hit is not None:
            return Composed(hit["text"], list(hit["sources"]), llm=True)
    answer = await llm.answer(result, reply_id, tools=tools, ctx=ctx)
    if isinstance(answer, Fallback):
        return offline
    if not (answer.cited or answer.tool_outcomes or answer.pending):
        # Grounded in nothing (no passage cited, no tool used): the templated reply, in
        # the customer's language, says no more and invents nothing.
        return offline
    composed = from_llm(answer, result.context.nlu.language)
    if cache is not None and key is not None and not answer.tool_outcomes and not answer.pending:
        await cache.set(key, {"text": composed.text, "sources": composed.sources})
    return composed


def for_llm(result: SkillResult) -> bool:
    """Whether the LLM writes this reply: not when a skill spoke (its templates quote
    the shop's facts exactly, in the customer's language) or for small talk."""
    return render_skill(result) is None and result.context.nlu.intent not in SMALL_TALK


def proposal(outcome: SkillOutcome | None) -> dict[str, Any] | None:
    """The side effect the LLM proposed, as the reply carries it to the skills stage
    (which owns the dialogue state and keeps it as the pending question)."""
    if outcome is None or not outcome.skill:
        return None
    args = outcome.data.get("arguments")
    if not isinstance(args, dict):
        return None
    facts = {k: v for k, v in outcome.data.items() if k != "arguments"}
    return {"skill": outcome.skill, "args": args, "facts": facts}


BURST_WORDS = 4  # a message this short may be the start of a burst
_MERGEABLE = frozenset({SkillStatus.SKIPPED, SkillStatus.NEEDS_INPUT})


def may_merge(result: SkillResult, window_s: float) -> bool:
    """Whether this reply may give way to a later message of a burst: a short message,
    not a question, whose reply is a greeting, a clarification or a question for a
    missing order number. What a skill did, or a handoff, is always told."""
    msg = result.context.nlu.accepted.message
    if window_s <= 0 or len(msg.text.split()) > BURST_WORDS or result.status not in _MERGEABLE:
        return False
    if msg.text.rstrip().endswith(("?", "？")):  # a whole question, however short
        return False
    told = result.skill is not None and result.status is SkillStatus.SKIPPED  # "no": declined
    answered = result.skill is None and result.context.answerable  # the KB answers it
    return result.skill != "handoff" and not told and not answered


async def superseded(result: SkillResult, window_s: float) -> bool:
    """Whether the customer followed this short message, within `window_s`, with another
    that is answered with it in view ("hi" / "my order" / "1002" get one reply, to
    "1002"). Postgres has every message the ingest stage took, so this stage needs no
    other stage's table."""
    if not may_merge(result, window_s):
        return False
    msg = result.context.nlu.accepted.message
    pool = current().pool
    return await db.customer_wrote_after(pool, msg.conversation_id, msg.received_at, window_s)


async def respond(raw: bytes) -> None:
    """Compose the reply to one skill result and pass it on (the ingest stage remembers
    it as the bot's turn, the skills stage any confirmation it asks for); a message a
    burst's later one supersedes gets none (`superseded`)."""
    result = SkillResult.from_bytes(raw)
    services = current()
    settings = services.settings
    nlu = result.context.nlu
    msg = nlu.accepted.message
    if await superseded(result, settings.burst_window_s):
        metrics.BURST_MERGED.inc()
        await inbound_log.settle(services.pool, msg.event_id, inbound_log.Outcome.MERGED)
        return
    # Derived from the inbound event id, so a redelivered event yields the same reply
    # id and the dispatcher sends it once.
    reply_id = f"r-{msg.event_id}"
    tools = ctx = None
    if services.llm is not None:
        from clawdesk.llm import ToolBox  # deferred: openai, ~0.4-2 s; LLM mode only

        tools, ctx = ToolBox(skill_runtime()), skill_context(result.context)
    composed = await compose_any(
        result, settings, services.llm, reply_id, tools=tools, ctx=ctx, cache=services.cache
    )
    conv = result.conversation_id
    reply = Reply(
        **result.lineage(),
        reply_id=reply_id,
        in_reply_to=msg.event_id,
        customer_id=msg.customer_id,
        text=composed.text,
        language=nlu.language,
        intent=nlu.intent,
        confidence=nlu.confidence,
        sources=composed.sources,
        handoff=composed.handoff,
        received_at=msg.received_at,
        metadata=msg.metadata,
        outcome=turn_outcome(result, composed),
        llm=composed.llm,
        proposed=proposal(composed.pending),
        slots=slots_of(nlu.entities),
    )
    # Before the send: a redelivery finds it stored and stores nothing (idempotent).
    await decisions.record(services.pool, decisions.of_reply(result, reply))
    await reply_topic.send(key=conv.encode(), value=reply.to_bytes(), headers=tracing.outgoing())


@app.agent(skill_result_topic)
async def compose_reply(results: AsyncIterable[bytes]) -> None:
    """Compose a reply for each skill result."""
    await ready()
    async for raw in results:
        await guard.process(STAGE, raw, respond, guard.headers_of(results))
