"""The reply stage gives every bot reply a turn outcome, from the skill result and the
composed reply, and puts it on the Reply event."""

from __future__ import annotations

from typing import Any
from unittest.mock import patch

import pytest

from agents.reply import Composed, compose, turn_outcome
from schemas import Reply, SkillStatus, TurnOutcome
from tests.llm.events import skill_result

ORDER = {
    "order": "#1002",
    "financial_status": "paid",
    "fulfillment_status": "fulfilled",
    "total": "313.90 USD",
    "cancelled": False,
}
REFUND = {"order": "#1002", "amount": "20.00", "currency": "USD"}


@pytest.mark.parametrize(
    ("case", "expected"),
    [
        ({}, TurnOutcome.KB_ANSWER),
        ({"answerable": False}, TurnOutcome.CLARIFY),
        ({"intent": "thanks", "answerable": False}, TurnOutcome.SMALL_TALK),
        ({"intent": "greeting"}, TurnOutcome.SMALL_TALK),
        (
            {"skill": "order_status", "status": SkillStatus.OK, "data": ORDER},
            TurnOutcome.SKILL_RESOLVED,
        ),
        ({"skill": "order_status", "status": SkillStatus.NEEDS_INPUT}, TurnOutcome.SKILL_PENDING),
        (
            {"skill": "refund", "status": SkillStatus.NEEDS_CONFIRMATION, "data": REFUND},
            TurnOutcome.SKILL_PENDING,
        ),
        ({"skill": "refund", "status": SkillStatus.IN_PROGRESS}, TurnOutcome.SKILL_PENDING),
        (
            {"skill": "order_status", "status": SkillStatus.NOT_FOUND, "data": {"reference": "#9"}},
            TurnOutcome.SKILL_FAILED,
        ),
        ({"skill": "order_status", "status": SkillStatus.UNAVAILABLE}, TurnOutcome.SKILL_FAILED),
        ({"skill": "refund", "status": SkillStatus.FAILED}, TurnOutcome.SKILL_FAILED),
        ({"skill": "refund", "status": SkillStatus.REFUSED}, TurnOutcome.SKILL_FAILED),
        (
            {"skill": "refund", "data": {"dialogue": "declined", "order": "#1002"}},
            TurnOutcome.SKILL_RESOLVED,
        ),
        ({"skill": "refund", "data": {"dialogue": "expired"}}, TurnOutcome.SKILL_FAILED),
        (
            {"skill": "handoff", "status": SkillStatus.OK, "data": {"reason": "customer_request"}},
            TurnOutcome.HANDOFF,
        ),
        # A skill that did not speak (skipped) leaves the reply to the KB, as compose does.
        ({"skill": "order_status", "status": SkillStatus.SKIPPED}, TurnOutcome.KB_ANSWER),
    ],
)
def test_offline_reply_outcome_follows_the_skill_result(
    case: dict[str, Any], expected: TurnOutcome
) -> None:
    result = skill_result(**case)
    assert turn_outcome(result, compose(result)) is expected


@pytest.mark.parametrize(
    ("composed", "answerable", "expected"),
    [
        (
            Composed("Delivery takes 5-8 days [1].", ["en/shipping.md"], llm=True),
            False,
            "kb_answer",
        ),
        (Composed("Could you say more?", llm=True), False, "clarify"),
        (
            Composed("Order #1002 shipped.", llm=True, tool_status=SkillStatus.OK),
            False,
            "skill_resolved",
        ),
        (
            Composed("No such order.", llm=True, tool_status=SkillStatus.NOT_FOUND),
            True,
            "skill_failed",
        ),
    ],
)
def test_llm_reply_outcome_uses_its_sources_and_tools(
    composed: Composed, answerable: bool, expected: str
) -> None:
    assert turn_outcome(skill_result(answerable=answerable), composed) == expected


def test_an_llm_proposal_to_confirm_is_pending() -> None:
    from clawdesk.skills import SkillOutcome

    proposal = SkillOutcome.ok({"arguments": {"order": "#1002"}})
    composed = Composed("Shall I refund #1002?", llm=True, pending=proposal)
    assert turn_outcome(skill_result(), composed) is TurnOutcome.SKILL_PENDING


def test_a_reply_written_before_outcomes_still_parses() -> None:
    old = (
        b'{"conversation_id": "c1", "tenant_id": "demo", "channel": "web",'
        b' "reply_id": "r-1", "in_reply_to": "m1", "customer_id": "u1", "text": "hi",'
        b' "language": "en", "intent": "greeting", "confidence": 0.9,'
        b' "received_at": "2025-01-06T09:00:00Z"}'
    )
    reply = Reply.from_bytes(old)
    assert reply.outcome is None and reply.llm is False


async def test_the_sent_reply_carries_its_outcome(test_app, fake_services) -> None:
    from agents.reply import compose_reply

    with patch("agents.reply.reply_topic.send") as send:
        async with compose_reply.test_context() as agent:
            await agent.put(skill_result(answerable=False, conversation="c1").to_bytes())
    reply = Reply.from_bytes(send.await_args.kwargs["value"])
    assert reply.outcome is TurnOutcome.CLARIFY
    assert reply.llm is False
