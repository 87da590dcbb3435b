"""`clawdesk eval answers`: how many questions of a set the bot answers itself.

Each question is a new conversation and goes through the pipeline's decision functions
offline: the tenant's intent model (nlu), hybrid retrieval and answerability
(retrieve), the dialogue decisions and the skill runtime on the demo shop (skills),
and the reply stage's choice between a skill's text, small talk, the knowledge-base
passage or a request to clarify (reply). Nothing is sent anywhere; skills run with an
in-memory audit and the providers configured in the environment (none: the demo shop).

A question is *answered* when the reply is a knowledge-base passage, a skill result or
small talk; otherwise the bot *asks* for an order number or e-mail, *asks to clarify*,
or *hands off*.
"""

from __future__ import annotations

import json
import logging
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from clawdesk.kb.answerability import is_answerable
from clawdesk.nlu import detect_language, extract_entities
from clawdesk.nlu.labels import OOS
from clawdesk.skills.base import SkillContext
from clawdesk.skills.dialogue import DialogueState, Policy, conclude, decide, turn_of
from clawdesk.skills.render import render
from clawdesk.skills.worker_skills import SkillRuntime
from schemas import (
    AcceptedMessage,
    Channel,
    ConversationSnapshot,
    InboundMessage,
    KbHit,
    NluResult,
    RetrievalContext,
    SkillResult,
    SkillStatus,
)

log = logging.getLogger(__name__)
SMALL_TALK = frozenset({"greeting", "thanks", "goodbye"})
ANSWERED = ("kb", "skill", "small_talk")


@dataclass
class AnswerReport:
    """How each question ended, overall and per language."""

    outcomes: Counter[str] = field(default_factory=Counter)  # kb/skill/small_talk/ask/...
    by_lang: dict[str, Counter[str]] = field(default_factory=dict)
    intents: Counter[str] = field(default_factory=Counter)
    handoff_reasons: Counter[str] = field(default_factory=Counter)
    answerable: int = 0  # questions the set says the KB answers
    answerable_answered: int = 0
    expected_passage: int = 0  # answered with the passage the set expects
    unanswerable: int = 0
    unanswerable_not_answered: int = 0

    @property
    def total(self) -> int:
        return sum(self.outcomes.values())

    @property
    def answered(self) -> int:
        return sum(self.outcomes[k] for k in ANSWERED)

    @property
    def answered_share(self) -> float:
        """Share of all questions answered without a handoff (or a clarifying question)."""
        return self.answered / self.total if self.total else 0.0

    @property
    def handoff_share(self) -> float:
        return self.outcomes["handoff"] / self.total if self.total else 0.0


def outcome_of(result: SkillResult) -> str:
    """Which kind of reply the reply stage sends for this result (its branch order; the
    confidence floor was applied when the nlu result was made)."""
    rendered = render(result)
    if rendered is not None:
        if rendered.handoff:
            return "handoff"
        if rendered.with_kb and result.context.answerable:
            return "kb"  # the passage, with the skill's note or question after it
        return "ask" if result.status is SkillStatus.NEEDS_INPUT else "skill"
    nlu = result.context.nlu
    if nlu.intent in SMALL_TALK:
        return "small_talk"
    return "kb" if result.context.answerable else "clarify"


def nlu_result(
    text: str, tenant: str, intent: str, confidence: float, version: str, min_confidence: float
) -> NluResult:
    """The nlu stage's result for a new conversation's first message."""
    msg = InboundMessage(
        conversation_id=f"eval-{abs(hash(text))}",
        tenant_id=tenant,
        channel=Channel.WEB,
        channel_message_id="eval",
        customer_id="eval",
        text=text,
    )
    accepted = AcceptedMessage(**msg.lineage(), message=msg, memory=ConversationSnapshot())
    from schemas import Entity

    return NluResult(
        **msg.lineage(),
        accepted=accepted,
        intent=intent if confidence >= min_confidence else OOS,
        confidence=round(float(confidence), 4),
        entities=[Entity(kind=e.kind, value=e.value) for e in extract_entities(text)],
        language=detect_language(text),
        model_version=version,
    )


async def skill_result(
    context: RetrievalContext, runtime: SkillRuntime, policy: Policy
) -> SkillResult:
    """The skills stage's result for a first message (a fresh dialogue)."""
    nlu = context.nlu
    msg = nlu.accepted.message
    slots = {e.kind: e.value for e in nlu.entities if e.kind in ("order_number", "email")}
    turn = turn_of(context, slots, None)
    decision = decide(turn, DialogueState(), policy, runtime.routes)
    if decision.run and decision.skill:
        ctx = SkillContext(
            context.tenant_id, context.conversation_id, msg.customer_id, language=nlu.language
        )
        outcome = await runtime.run(
            decision.skill,
            ctx,
            decision.args,
            confirmed=decision.confirmed,
            key_event_id=msg.event_id,
        )
        done = conclude(
            turn, decision, policy, SkillStatus(outcome.status.value), outcome.data, outcome.message
        )
    else:
        done = conclude(turn, decision, policy)
    return SkillResult(
        **context.lineage(),
        context=context,
        skill=done.skill,
        status=done.status,
        data=done.data,
        message=done.message,
    )


def read_questions(path: Path) -> list[dict[str, Any]]:
    """JSONL rows with `question`, `lang`, `expected_doc`, `expected_section`."""
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def tally(report: AnswerReport, row: dict[str, Any], result: SkillResult, outcome: str) -> None:
    """Count one question's outcome."""
    report.outcomes[outcome] += 1
    report.by_lang.setdefault(row.get("lang", "?"), Counter())[outcome] += 1
    report.intents[result.context.nlu.intent] += 1
    if outcome == "handoff":
        report.handoff_reasons[str(result.data.get("reason"))] += 1
    answered = outcome in ANSWERED
    if row.get("expected_doc") is None:
        report.unanswerable += 1
        report.unanswerable_not_answered += not answered
        return
    report.answerable += 1
    report.answerable_answered += answered
    hits: list[KbHit] = result.context.hits
    if (
        outcome == "kb"
        and hits
        and (hits[0].doc_id, hits[0].section)
        == (
            row["expected_doc"],
            row["expected_section"],
        )
    ):
        report.expected_passage += 1


async def evaluate_answers(
    rows: list[dict[str, Any]],
    *,
    kb: Any,  # clawdesk.kb.index.KnowledgeBase, synced for `kb_tenant`
    kb_tenant: str,
    nlu: Any,  # clawdesk.nlu.tenant_models.TenantNlu, loaded for `tenant`
    tenant: str,
    runtime: SkillRuntime,
    settings: Any,  # clawdesk.settings.AppSettings
) -> AnswerReport:
    """Run every question through nlu → retrieve → skills → reply decisions."""
    policy = Policy(
        settings.skill_confirmation_ttl_s,
        settings.handoff_unclear_turns,
        settings.handoff_failed_skills,
    )
    texts = [r["question"] for r in rows]
    version, predictions = nlu.predict(tenant, texts)
    vectors = kb.embedder.encode(texts)
    report = AnswerReport()
    for row, prediction, vector in zip(rows, predictions, vectors, strict=True):
        result_nlu = nlu_result(
            row["question"],
            tenant,
            prediction.intent,
            prediction.confidence,
            version,
            settings.nlu_min_confidence,
        )
        hits = kb.search(
            kb_tenant,
            row["question"],
            vector.tolist(),
            settings.kb_top_k,
            language=result_nlu.language,
        )
        context = RetrievalContext(
            **result_nlu.lineage(),
            nlu=result_nlu,
            hits=hits,
            answerable=is_answerable(result_nlu, hits, settings.kb_min_score),
            kb_version="eval",
        )
        result = await skill_result(context, runtime, policy)
        tally(report, row, result, outcome_of(result))
    return report
