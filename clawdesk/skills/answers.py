"""Is a message a "yes" or a "no" to the question the bot just asked?

Consent to a refund must be explicit, so this is deliberately strict: the whole
message has to be made of confirming words (plus politeness like "please"), e.g.
"yes", "Yes please!", "ok, go ahead", "确认", "是的", "好的,确认". Anything else —
"yes but only half", "hmm", "refund #1003 instead" — is neither, and the pending
action lapses. "cancel"/"取消" is not a "no": asked "Shall I cancel order #1004?",
it would mean the opposite.
"""

from __future__ import annotations

import re
import unicodedata
from typing import Literal

Answer = Literal["yes", "no"]

YES_WORDS = frozenset(
    {
        "yes", "y", "yeah", "yep", "yup", "ya", "sure", "ok", "okay", "k", "confirm",
        "confirmed", "correct", "right", "absolutely", "definitely", "proceed", "agree",
    }
)  # fmt: skip
NO_WORDS = frozenset({"no", "n", "nope", "nah", "not", "dont", "stop", "never"})
# Words that change nothing on either side ("yes please", "go ahead", "no thanks").
FILLER_WORDS = frozenset(
    {
        "please", "pls", "thanks", "thank", "you", "go", "ahead", "do", "it", "that",
        "thats", "is", "fine", "of", "course", "i", "im", "a", "sir", "mate",
    }
)  # fmt: skip
YES_ZH = frozenset(
    {
        "是", "是的", "对", "对的", "好", "好的", "好啊", "行", "可以", "确认", "确定", "嗯",
        "嗯嗯", "没问题", "同意", "请确认", "确认退款", "确认取消", "要", "需要", "麻烦了",
    }
)  # fmt: skip
NO_ZH = frozenset(
    {"不", "不是", "不要", "不用", "不用了", "不需要", "算了", "别", "先不", "先不要", "否"}
)
FILLER_ZH = frozenset({"谢谢", "请", "吧", "的", "了", "呢", "啊"})

_PARTS = re.compile(r"[\s\W_]+", re.UNICODE)
_CJK = re.compile(r"[\u3400-\u9fff]")


def _parts(text: str) -> list[str]:
    text = unicodedata.normalize("NFKC", text).casefold().replace("'", "").replace("’", "")
    return [p for p in _PARTS.split(text) if p]


def _kind(part: str) -> Answer | Literal["filler"] | None:
    if _CJK.search(part):
        if part in YES_ZH:
            return "yes"
        if part in NO_ZH:
            return "no"
        return "filler" if part in FILLER_ZH else None
    if part in YES_WORDS:
        return "yes"
    if part in NO_WORDS:
        return "no"
    return "filler" if part in FILLER_WORDS else None


def yes_or_no(text: str) -> Answer | None:
    """Whether the whole message is a "yes" or a "no" (None: neither, or both)."""
    kinds = [_kind(p) for p in _parts(text)]
    if not kinds or None in kinds:
        return None
    said = {k for k in kinds if k != "filler"}
    if said == {"yes"}:
        return "yes"
    if said == {"no"}:
        return "no"
    return None  # only filler, or both ("yes no")
