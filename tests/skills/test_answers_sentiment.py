"""The strict yes/no reader and the bilingual upset-customer lexicon."""

from __future__ import annotations

import json

import pytest

from clawdesk.services import packaged_data
from clawdesk.skills.answers import yes_or_no
from clawdesk.skills.sentiment import is_negative, negativity


@pytest.mark.parametrize(
    ("text", "answer"),
    [
        ("yes", "yes"),
        ("Yes please!", "yes"),
        ("ok, go ahead", "yes"),
        ("ＹＥＳ", "yes"),
        ("确认", "yes"),
        ("是的", "yes"),
        ("好的,确认。", "yes"),
        ("no", "no"),
        ("No thanks", "no"),
        ("不用了", "no"),
        ("yes but only half", None),
        ("yes no", None),
        ("please", None),
        ("cancel", None),
        ("取消", None),
        ("refund #1003 instead", None),
        ("", None),
    ],
)
def test_only_a_plain_answer_counts(text: str, answer: str | None) -> None:
    assert yes_or_no(text) == answer


@pytest.mark.parametrize(
    ("text", "negative"),
    [
        ("This is terrible service", True),
        ("I'm disappointed and frustrated", True),
        ("你们的服务太差了", True),
        ("我要投诉", True),
        ("I'm a bit disappointed", False),
        ("not bad at all", False),
        ("不太差", False),
        ("where is my order #1002?", False),
        ("包裹怎么还没到", False),
    ],
)
def test_upset_customers_are_recognised(text: str, negative: bool) -> None:
    assert is_negative(text) is negative


def test_no_demo_kb_question_reads_as_upset() -> None:
    rows = packaged_data("kb_questions.jsonl").read_text().splitlines()
    questions = [json.loads(r)["question"] for r in rows if r.strip()]
    assert [q for q in questions if is_negative(q)] == []
    assert max(negativity(q) for q in questions) <= 1
