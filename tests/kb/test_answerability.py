"""Whether passages answer a message, and what a customer sees of one."""

from __future__ import annotations

import pytest

from clawdesk.kb.answerability import is_relevant, is_same_question
from clawdesk.kb.chat_text import chat_text
from schemas import KbHit


def hit(score: float = 0.0, multilingual: float = 0.0, keyword: float = 0.0) -> KbHit:
    return KbHit(
        doc_id="zh/shipping.md",
        title="配送",
        section="运费怎么算?",
        text="…",
        score=score,
        multilingual=multilingual,
        keyword=keyword,
    )


@pytest.mark.parametrize(
    ("h", "relevant"),
    [
        (hit(score=0.5), True),  # read by the first encoder, close in meaning
        (hit(score=0.2, keyword=0.6), True),  # or sharing most words
        (hit(score=0.2, keyword=0.2), False),
        (hit(multilingual=0.91), True),  # Chinese: the multilingual encoder decides
        (hit(multilingual=0.885, keyword=0.2), True),  # a little less close, shared words
        (hit(multilingual=0.885), False),
        (hit(multilingual=0.86, keyword=0.14), False),  # "给我讲个笑话吧" near a passage
        (hit(keyword=0.2), True),  # no multilingual encoder: the words alone
    ],
)
def test_relevance_on_each_encoders_scale(h: KbHit, relevant: bool) -> None:
    assert is_relevant(h, 0.35) is relevant


def test_the_same_question_is_near_verbatim_on_either_scale() -> None:
    assert is_same_question(hit(score=0.95)) and is_same_question(hit(multilingual=0.97))
    assert not is_same_question(hit(score=0.6, multilingual=0.9))


def test_chat_text_drops_markup_and_hard_wraps_but_keeps_lists() -> None:
    markdown = (
        "- **EU:** no. Prices include VAT and we handle import clearance, also for parcels\n"
        "  from Shenzhen.\n- UK: no.\n\nSee [订单问题](orders.md) for more. This line\nwraps here."
    )
    assert chat_text(markdown) == (
        "• EU: no. Prices include VAT and we handle import clearance, also for parcels from "
        "Shenzhen.\n• UK: no.\n\nSee 订单问题 for more. This line wraps here."
    )
    assert chat_text("请在签收后 7 天内\n提交,附上照片。") == "请在签收后 7 天内提交,附上照片。"
    assert chat_text("1. first\n2. second\n| a | b |\n|---|---|") == (
        "1. first\n2. second\n| a | b |\n|---|---|"
    )
