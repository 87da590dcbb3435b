"""What the pipeline decided for each customer message, kept in the `decisions` table.

One row per message: the intent and its confidence, the knowledge-base hits and whether
they answer it, the skill with its arguments, the reply text, the turn outcome and
whether a human took over. Production writes it so that a replay (`clawdesk replay`)
can be compared with what customers actually got; a shadow run writes the same rows
into its own schema. The write is idempotent per message id (at-least-once delivery).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from datetime import datetime
from typing import Any

from psycopg.types.json import Jsonb
from psycopg_pool import AsyncConnectionPool

from schemas import InboundMessage, Reply, SkillResult, TurnOutcome

# The bot stayed quiet: a human owns the conversation (not a `TurnOutcome`: no reply).
HUMAN = "human"
WOULD_RUN = "would_run"  # SkillResult.data flag of a side effect a shadow run held back


@dataclass(frozen=True)
class Decision:
    """One message's decision, as stored (columns of `decisions`)."""

    message_id: str
    conversation_id: str
    tenant_id: str
    channel: str
    received_at: datetime
    outcome: str
    language: str | None = None
    intent: str | None = None
    confidence: float | None = None
    model_version: str | None = None
    kb_version: str | None = None
    answerable: bool | None = None
    top_doc_id: str | None = None
    top_section: str | None = None
    top_score: float | None = None
    hits: list[dict[str, Any]] = field(default_factory=list)
    skill: str | None = None
    skill_status: str | None = None
    skill_args: dict[str, Any] = field(default_factory=dict)
    would_run: bool = False
    reply_id: str | None = None
    reply_text: str | None = None
    sources: list[str] = field(default_factory=list)
    handoff: bool = False
    llm: bool = False


COLUMNS: tuple[str, ...] = tuple(Decision.__dataclass_fields__)
JSON_COLUMNS = frozenset({"hits", "skill_args", "sources"})


def of_reply(result: SkillResult, reply: Reply) -> Decision:
    """The decision behind a bot reply (pure)."""
    context = result.context
    nlu = context.nlu
    msg = nlu.accepted.message
    top = context.hits[0] if context.hits else None
    return Decision(
        message_id=msg.event_id,
        conversation_id=msg.conversation_id,
        tenant_id=msg.tenant_id,
        channel=msg.channel.value,
        received_at=msg.received_at,
        outcome=(reply.outcome or TurnOutcome.CLARIFY).value,
        language=nlu.language,
        intent=nlu.intent,
        confidence=nlu.confidence,
        model_version=nlu.model_version,
        kb_version=context.kb_version,
        answerable=context.answerable,
        top_doc_id=top.doc_id if top else None,
        top_section=top.section if top else None,
        top_score=round(top.score, 4) if top else None,
        hits=[
            {"doc_id": h.doc_id, "section": h.section, "score": round(h.score, 4)}
            for h in context.hits
        ],
        skill=result.skill,
        skill_status=result.status.value if result.skill else None,
        skill_args=dict(result.arguments),
        would_run=bool(result.data.get(WOULD_RUN)),
        reply_id=reply.reply_id,
        reply_text=reply.text,
        sources=list(reply.sources),
        handoff=reply.handoff or reply.outcome is TurnOutcome.HANDOFF,
        llm=reply.llm,
    )


def of_quiet(msg: InboundMessage) -> Decision:
    """The decision for a message the bot left to the human who owns its conversation."""
    return Decision(
        message_id=msg.event_id,
        conversation_id=msg.conversation_id,
        tenant_id=msg.tenant_id,
        channel=msg.channel.value,
        received_at=msg.received_at,
        outcome=HUMAN,
        handoff=True,
    )


_INSERT = (
    f"INSERT INTO decisions ({', '.join(COLUMNS)})"
    f" VALUES ({', '.join(['%s'] * len(COLUMNS))}) ON CONFLICT (message_id) DO NOTHING"
)


def _row(decision: Decision) -> tuple[Any, ...]:
    values = asdict(decision)
    return tuple(Jsonb(values[c]) if c in JSON_COLUMNS else values[c] for c in COLUMNS)


async def record(pool: AsyncConnectionPool, decision: Decision) -> bool:
    """Store a decision once per message; whether this call stored it."""
    async with pool.connection() as conn:
        cur = await conn.execute(_INSERT, _row(decision))
        return cur.rowcount == 1
