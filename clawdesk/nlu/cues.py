"""Words that say what a customer wants done, in English and Chinese.

A tenant's intent model learns from about ten examples per intent, so a plain "please
refund order 1002" or "订单1012退款" can score under the confidence floor, or lose to
`order_status` because the order number weighs more than the verb. An action on a
named thing is the clearest request a customer makes, though, and does not need a
model to read: these cues name the action, the entities (or a back-reference to the
remembered order) name its object. `clawdesk.nlu.resolve` combines the two with the
model's ranking.

The cues are the vocabulary of shop actions, not of any one shop: they cover the
built-in intents whose skills act on an order or a parcel, plus asking for a human.
"""

from __future__ import annotations

import re
from collections.abc import Iterable

__all__ = [
    "ACTION_PRIORITY",
    "BACK_REFERENCE",
    "CUES",
    "FOLLOW_UP",
    "STATUS_QUESTION",
    "cue_intents",
    "is_follow_up",
    "refers_back",
]

_I = re.IGNORECASE

# The most specific action first: "cancel and refund order 1004" is a cancellation (the
# refund follows from it); "return it and refund me" is a return.
ACTION_PRIORITY = (
    "cancel_order",
    "return_request",
    "refund_request",
    "track_shipment",
    "order_status",
)

CUES: dict[str, re.Pattern[str]] = {
    "cancel_order": re.compile(
        r"\bcancel(?:l?ing|l?ed|lation)?\b|\bcall off\b|\bdon'?t want (?:it|the order)\b"
        r"|取消|不要了|撤销|撤单",
        _I,
    ),
    "refund_request": re.compile(
        r"\brefund(?:ed|ing|s)?\b|\bmoney back\b|\breimburse|\bpay (?:me )?back\b"
        r"|\bchargeback\b|退款|退钱|退费|把钱退|钱退|返还|退回.{0,3}钱",
        _I,
    ),
    "return_request": re.compile(
        r"\breturn(?:ing|ed)?\b|\bsend (?:it |them )?back\b|\bexchange\b|\breplace(?:ment)?\b"
        r"|退货|退回|换货|退换|寄回",
        _I,
    ),
    "track_shipment": re.compile(
        r"\btrack(?:ing)?\b|\bparcel\b|\bpackage\b|\bshipment\b|\bdelivery status\b"
        r"|\bwaybill\b|\bcourier\b|\bwhere(?:'s| is| are)\b.{0,40}\b(?:parcel|package|it|stuff)\b"
        r"|物流|快递|运单|包裹|单号|到哪|派送|配送到",
        _I,
    ),
    "order_status": re.compile(
        r"\bstatus\b|\bwhere(?:'s| is| are)\b|\bupdate on\b|\bcheck (?:on )?(?:my |the )?order\b"
        r"|\blook up\b|\bwhat happened\b|\bhas (?:it|my order) shipped\b|\bshipped\b"
        r"|查|状态|怎么样了|到哪|发货|发出|进度",
        _I,
    ),
    "human_agent": re.compile(
        r"\b(?:real |live )?(?:human|person|agent|representative|operator)\b"
        r"|人工|真人|客服人员|转人工",
        _I,
    ),
}

# "Did I get my money back for order 1007?" asks how a request went, it does not make
# one: a question about the past is an order-status question even with a refund word.
STATUS_QUESTION = re.compile(
    r"^\s*(?:did|has|have|was|were|is)\b.{0,60}\b(?:refund|money back|cancel|return)"
    r"|(?:退款|退货|取消).{0,6}(?:了吗|了没|没有|到账|成功|好了)"
    r"|(?:到账|退回来)了(?:吗|没)",
    _I,
)

# "that order", "it", "那个订单": the order talked about a moment ago.
BACK_REFERENCE = re.compile(
    r"\b(?:that|this|the same|my last|the last|last) (?:one|order|parcel|package|purchase)\b"
    r"|\b(?:it|them)\b|那个订单|这个订单|那单|这单|刚才的订单|上面的订单|那个|这个|它",
    _I,
)

# A message that only makes sense as a continuation: "and is there a faster option?",
# "what about Germany?", "那寄到德国呢?", "银行卡呢?".
FOLLOW_UP = re.compile(
    r"^\s*(?:and|also|but|what about|how about|and what about|what if|and if|ok,? and"
    r"|so|then)\b|^\s*(?:那|还有|另外|那么|如果是)|呢\s*[?？]?\s*$",
    _I,
)


def cue_intents(text: str, intents: Iterable[str]) -> set[str]:
    """The intents (among the tenant's) whose action words occur in `text`."""
    return {i for i in intents if (cue := CUES.get(i)) is not None and cue.search(text)}


def refers_back(text: str) -> bool:
    """Whether the message points to something said before ("that order", "it")."""
    return BACK_REFERENCE.search(text) is not None


def is_follow_up(text: str) -> bool:
    """Whether the message reads as a continuation of the previous question."""
    return FOLLOW_UP.search(text) is not None
