"""The keyword side of hybrid search reads Chinese and English."""

from __future__ import annotations

import pytest

from clawdesk.kb.answerability import is_relevant
from clawdesk.kb.keywords import KeywordIndex, tokenize
from schemas import KbHit


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("How long does SHIPPING take?", ["long", "shipping", "take"]),
        ("退货政策", ["退货", "政策", "退货", "货政", "政策"]),
    ],
)
def test_tokenize_drops_stopwords_and_segments_chinese(text, expected):
    assert tokenize(text) == expected


def test_chinese_query_finds_the_chinese_section():
    index = KeywordIndex(["退货 30 天内可以申请退货", "运费 满 49 元包邮", "支付宝 微信支付"])
    best = index.search("我想申请退货", 3)[0]
    assert best[0] == 0
    # query terms 想 申请 退货 我想 想申 请退; the passage has 申请 退货 请退
    assert best[2] == pytest.approx(3 / 6)


def hit(score: float, keyword: float) -> KbHit:
    return KbHit(doc_id="d", title="t", section="s", text="x", score=score, keyword=keyword)


@pytest.mark.parametrize(
    ("score", "keyword", "relevant"),
    [(0.6, 0.0, True), (0.1, 0.5, True), (0.2, 0.1, False), (0.0, 0.2, True), (0.0, 0.1, False)],
)
def test_relevance_needs_meaning_or_words(score, keyword, relevant):
    assert is_relevant(hit(score, keyword), 0.35) is relevant
