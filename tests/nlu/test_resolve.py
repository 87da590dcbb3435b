"""Intent resolution: the model's ranking, the message's action words and entities, and
the conversation so far (pure; no model loaded)."""

from __future__ import annotations

import pytest

from clawdesk.nlu import IntentPrediction
from clawdesk.nlu.resolve import resolve_intent

FLOOR = 0.90
INTENTS = [
    "order_status", "track_shipment", "refund_request", "cancel_order", "return_request",
    "human_agent", "shipping_info", "payment_issue", "thanks", "greeting",
]  # fmt: skip


def ranked(*pairs: tuple[str, float], intent: str | None = None) -> IntentPrediction:
    best, p = pairs[0]
    return IntentPrediction(intent or best, p, list(pairs))


@pytest.mark.parametrize(
    ("text", "kinds", "expected"),
    [
        ("please refund order 1002", ["order_number"], "refund_request"),
        ("订单1012退款", ["order_number"], "refund_request"),
        ("cancel and refund order 1004", ["order_number"], "cancel_order"),
        ("did I get my money back for order 1007?", ["order_number"], "order_status"),
        ("can you track YT2631100012345678?", ["tracking_number"], "track_shipment"),
    ],
)
def test_an_action_on_a_named_thing_is_that_action(
    text: str, kinds: list[str], expected: str
) -> None:
    # The model ranks the order number above the verb, under the floor.
    prediction = ranked(("order_status", 0.62), ("refund_request", 0.2))
    got = resolve_intent(text, prediction, FLOOR, entity_kinds=kinds, intents=INTENTS)
    assert (got.intent, got.source) == (expected, "action")


def test_an_action_on_the_remembered_order_needs_a_back_reference() -> None:
    prediction = ranked(("refund_request", 0.5))
    back = resolve_intent(
        "ok, I want a refund for it", prediction, FLOOR, intents=INTENTS, remembered_order=True
    )
    assert (back.intent, back.source) == ("refund_request", "action")
    nothing = resolve_intent("ok, I want a refund", prediction, FLOOR, intents=INTENTS)
    assert nothing.intent == "oos"  # no object, too unsure, and refunds need more


def test_an_underconfident_kb_or_small_talk_intent_is_kept_above_the_soft_floor() -> None:
    got = resolve_intent("thanks, bye!", ranked(("thanks", 0.76)), FLOOR, intents=INTENTS)
    assert (got.intent, got.source) == ("thanks", "soft")
    low = resolve_intent("今天天气怎么样", ranked(("shipping_info", 0.47)), FLOOR, intents=INTENTS)
    assert (low.intent, low.source) == ("oos", "unsure")


def test_an_intent_that_acts_needs_its_words_below_the_floor() -> None:
    text = "Is there a discount on my first order?"
    got = resolve_intent(text, ranked(("order_status", 0.7)), FLOOR, intents=INTENTS)
    assert got.intent == "oos"
    cued = resolve_intent("what's the status?", ranked(("order_status", 0.7)), FLOOR)
    assert (cued.intent, cued.source) == ("order_status", "cue")


def test_the_models_own_out_of_scope_verdict_is_kept() -> None:
    prediction = ranked(("human_agent", 0.81), intent="oos")
    got = resolve_intent("tell me a joke", prediction, FLOOR, intents=INTENTS)
    assert (got.intent, got.source) == ("oos", "oos")


def test_a_follow_up_inherits_the_previous_intent_and_searches_with_both() -> None:
    before = ("How long does a card refund take?", ranked(("refund_request", 0.95)))
    now = ranked(("payment_issue", 0.4), ("refund_request", 0.3))
    got = resolve_intent("and if I paid with PayPal?", now, FLOOR, previous=before)
    assert (got.intent, got.source) == ("refund_request", "follow_up")
    assert got.query == "How long does a card refund take? and if I paid with PayPal?"
    sure = resolve_intent("银行卡呢?", ranked(("payment_issue", 0.95)), FLOOR, previous=before)
    assert sure.intent == "payment_issue" and sure.query is not None
    fresh = resolve_intent("How do I pay?", ranked(("payment_issue", 0.95)), FLOOR, previous=before)
    assert fresh.query is None
