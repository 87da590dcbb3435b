"""A small bilingual (English/Chinese) lexicon detector of angry or upset customers.

Why a lexicon and not a model: it has to run on every message at no cost, and its only
use is to decide when a person should take over. It errs on the quiet side: one strong
word ("terrible", "垃圾", "投诉") or two milder ones ("disappointed" + "frustrated")
make a message negative; a word right after a negation ("not bad", "不差") does not count.
It is a heuristic, not a measured classifier: a cross customer without these words is
missed, and a quoted word counts. Tenants tune it by editing the word lists.
"""

from __future__ import annotations

import re
import unicodedata

STRONG = 2
MILD = 1
THRESHOLD = 2  # a message scoring this much is negative

EN_WORDS: dict[str, int] = {
    **dict.fromkeys(
        (
            "terrible", "awful", "horrible", "worst", "useless", "ridiculous", "unacceptable",
            "scam", "scammers", "fraud", "furious", "disgusting", "pathetic", "rubbish",
            "garbage", "incompetent", "outrageous", "lawyer", "sue", "wtf", "shit", "fuck",
            "fucking", "crap", "hate", "liars", "nightmare",
        ),
        STRONG,
    ),
    **dict.fromkeys(
        (
            "angry", "annoyed", "annoying", "disappointed", "disappointing", "frustrated",
            "frustrating", "upset", "unhappy", "complaint", "complain", "fed", "sick",
            "ignored", "forever", "waste", "wasted", "bad", "poor",
            # mild: "this is a joke" is angry, "tell me a joke" is not
            "joke",
        ),
        MILD,
    ),
}  # fmt: skip
ZH_WORDS: dict[str, int] = {
    **dict.fromkeys(
        (
            "垃圾", "太差", "差劲", "骗子", "欺诈", "诈骗", "投诉", "气死", "愤怒", "恶心", "坑人",
            "什么破", "忍无可忍", "太过分", "无耻", "废物", "报警", "消协", "曝光",
        ),
        STRONG,
    ),
    **dict.fromkeys(
        ("生气", "失望", "不满", "烦死", "无语", "等了很久", "太慢", "很差"),
        MILD,
    ),
}  # fmt: skip
EN_NEGATIONS = frozenset({"not", "no", "never", "isnt", "wasnt", "arent", "dont", "without"})
ZH_NEGATIONS = ("不", "没", "别", "并不", "一点也不")

_WORD = re.compile(r"[a-z]+")


def _english_score(text: str) -> int:
    words = _WORD.findall(text.replace("'", "").replace("’", ""))
    score = 0
    for i, word in enumerate(words):
        if word in EN_WORDS and not (i and words[i - 1] in EN_NEGATIONS):
            score += EN_WORDS[word]
    return score


def _chinese_score(text: str) -> int:
    score = 0
    for word, weight in ZH_WORDS.items():
        for match in re.finditer(re.escape(word), text):
            before = text[max(0, match.start() - 4) : match.start()]
            if not before.endswith(ZH_NEGATIONS):
                score += weight
    return score


def negativity(text: str) -> int:
    """How negative the message reads: the sum of its lexicon words' weights."""
    text = unicodedata.normalize("NFKC", text).casefold()
    return _english_score(text) + _chinese_score(text)


def is_negative(text: str) -> bool:
    """Whether the customer sounds angry or upset enough to bring in a person."""
    return negativity(text) >= THRESHOLD
