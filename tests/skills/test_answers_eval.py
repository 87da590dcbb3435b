"""`clawdesk eval answers`: how a reply is classified and counted."""

from __future__ import annotations

from typing import Any

import pytest

from clawdesk.skills.answers_eval import AnswerReport, outcome_of, tally
from schemas import KbHit, SkillResult, SkillStatus
from tests.llm.events import skill_result

HIT = KbHit(
    doc_id="en/shipping.md", title="Shipping", section="How long?", text="5 days", score=0.8
)


def result(intent: str, **changes: Any) -> SkillResult:
    """A skill result for ``intent`` with one KB hit, not answerable unless told."""
    return skill_result("q", **{"intent": intent, "hits": [HIT], "answerable": False, **changes})


@pytest.mark.parametrize(
    ("res", "outcome"),
    [
        (result("shipping_info", answerable=True), "kb"),
        (result("oos"), "clarify"),
        (result("greeting"), "small_talk"),
        (
            result(
                "human_agent",
                skill="handoff",
                status=SkillStatus.OK,
                data={"reason": "customer_request"},
            ),
            "handoff",
        ),
        (
            result(
                "order_status",
                skill="order_status",
                status=SkillStatus.OK,
                data={
                    "order": "#1",
                    "financial_status": "paid",
                    "fulfillment_status": None,
                    "total": "1 EUR",
                },
            ),
            "skill",
        ),
        (
            result(
                "track_shipment",
                skill="track_shipment",
                status=SkillStatus.NEEDS_INPUT,
                data={"missing": "order"},
            ),
            "ask",
        ),
        (
            result(
                "track_shipment",
                answerable=True,
                skill="track_shipment",
                status=SkillStatus.NEEDS_INPUT,
                data={"missing": "order"},
            ),
            "kb",
        ),
    ],
)
def test_each_reply_kind_is_classified(res: SkillResult, outcome: str) -> None:
    assert outcome_of(res) == outcome


def test_shares_count_answers_and_the_expected_passage() -> None:
    report = AnswerReport()
    expected = {"lang": "en", "expected_doc": "en/shipping.md", "expected_section": "How long?"}
    other = {**expected, "expected_section": "Other"}
    tally(report, expected, result("shipping_info", answerable=True), "kb")
    tally(report, other, result("shipping_info", answerable=True), "kb")
    tally(report, expected, result("human_agent"), "handoff")
    tally(report, {"lang": "zh", "expected_doc": None}, result("oos"), "clarify")
    assert (report.total, report.answered) == (4, 2)
    assert report.answered_share == 0.5 and report.handoff_share == 0.25
    assert (report.expected_passage, report.answerable_answered, report.answerable) == (1, 2, 3)
    assert (report.unanswerable_not_answered, report.unanswerable) == (1, 1)
