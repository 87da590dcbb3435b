"""The prompt and the citations, as pure functions."""

from __future__ import annotations

import json

from clawdesk.llm.prompt import build_messages, cited, strip_unknown_citations
from schemas import SkillStatus
from tests.llm.events import RETURNS, SHIPPING, skill_result


def test_weak_passages_are_marked_and_no_passages_said_so() -> None:
    weak = build_messages(skill_result(answerable=False))[0]["content"]
    assert "weak matches" in weak
    assert "[2] Returns › How do I return an item?" in weak
    none = build_messages(skill_result(hits=[], answerable=False))[0]["content"]
    assert "Knowledge-base passages: none found." in none


def test_the_skills_stage_result_is_given_as_data() -> None:
    data = {"order": "#1002", "fulfillment_status": "fulfilled"}
    result = skill_result(skill="order_status", status=SkillStatus.OK, data=data)
    system = build_messages(result)[0]["content"]
    block = system.split("Action result (from the shop's systems):\n", 1)[1]
    assert json.loads(block) == {"skill": "order_status", "status": "ok", "data": data}
    skipped = build_messages(skill_result())[0]["content"]
    assert "Action result" not in skipped


def test_citations_in_order_of_first_use_without_repeats() -> None:
    hits = [SHIPPING, RETURNS]
    assert cited("See [2], then [1] and [2] again; [3] is nothing.", hits) == [
        (2, RETURNS),
        (1, SHIPPING),
    ]
    assert cited("no citations", hits) == []


def test_unknown_citation_marks_are_removed() -> None:
    assert strip_unknown_citations("a [1] b [3] c [0]", 2) == "a [1] b  c "
