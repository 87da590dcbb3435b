"""Skill results as the reply stage receives them, for the LLM tests."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

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
    Turn,
)

SHIPPING = KbHit(
    doc_id="en/shipping.md",
    title="Shipping",
    section="How long does delivery take?",
    text="Standard delivery to Germany takes 5-8 business days.",
    score=0.71,
)
RETURNS = KbHit(
    doc_id="en/returns.md",
    title="Returns",
    section="How do I return an item?",
    text="You can return unused items within 30 days of delivery.",
    score=0.52,
)


def skill_result(
    text: str = "How long does shipping to Germany take?",
    *,
    conversation: str = "conv-1",
    tenant: str = "demo",
    intent: str = "shipping_info",
    language: str = "en",
    confidence: float = 0.9,
    hits: list[KbHit] | None = None,
    answerable: bool = True,
    skill: str | None = None,
    status: SkillStatus = SkillStatus.SKIPPED,
    data: dict[str, Any] | None = None,
    turns: list[tuple[str, str]] | None = None,
    message_id: str = "m1",
    message: str = "",
) -> SkillResult:
    at = datetime(2025, 1, 6, 9, 0, tzinfo=UTC)
    msg = InboundMessage(
        conversation_id=conversation,
        tenant_id=tenant,
        channel=Channel.WEB,
        channel_message_id=message_id,
        customer_id="web-visitor-1",
        text=text,
    )
    memory = ConversationSnapshot(
        turns=[Turn(role=role, text=said, at=at) for role, said in turns or []]  # type: ignore[arg-type]
    )
    accepted = AcceptedMessage(**msg.lineage(), message=msg, memory=memory)
    nlu = NluResult(
        **msg.lineage(),
        accepted=accepted,
        intent=intent,
        confidence=confidence,
        language=language,
        model_version="v1",
    )
    context = RetrievalContext(
        **msg.lineage(),
        nlu=nlu,
        hits=[SHIPPING, RETURNS] if hits is None else hits,
        answerable=answerable,
        kb_version="kb-1",
    )
    return SkillResult(
        **msg.lineage(),
        context=context,
        skill=skill,
        status=status,
        data=data or {},
        message=message,
    )
