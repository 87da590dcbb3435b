"""The intent of a message, from the model's ranking, the message's own words and
entities, and the conversation so far.

A calibrated floor (0.90 by default) keeps a few-shot model from guessing, but it also
turns many right answers into "out of scope": on the demo model a plain cancellation, a
refund request that names an order, or an elliptical follow-up ("what about Germany?")
score 0.3–0.8 although the best intent is the right one. The rules, in order:

1. **An action on a named thing.** A message with an order or tracking number (or a
   back-reference to the remembered order) and an action word (`clawdesk.nlu.cues`) is
   that action: the most specific action named wins; a question about a past action
   ("did I get my money back for order 1007?") is a status question.
2. **The model, above the floor.**
3. **The model, above a soft floor** (0.55), when its own out-of-scope check passed; an
   intent that acts (a skill or a handoff) also needs its action words in the message.
4. **A follow-up** ("and if I paid with PayPal?", "那寄到德国呢?") takes the intent of the
   customer's previous question when the model ranks it as likely as anything else.
   Whatever its intent, a follow-up's retrieval query is the two questions together.
5. Otherwise out of scope: `source` says whether the model itself said so ("oos") or
   only nothing led clearly ("unsure").

All of it is pure: the nlu stage passes the predictions in.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from clawdesk.nlu.cues import (
    ACTION_PRIORITY,
    CUES,
    STATUS_QUESTION,
    cue_intents,
    is_follow_up,
    refers_back,
)
from clawdesk.nlu.labels import OOS
from clawdesk.nlu.prediction import IntentPrediction

__all__ = ["Resolved", "resolve_intent"]

# Below this even a cue-backed best intent is not trusted.
SOFT_FLOOR = 0.55
# A follow-up keeps the previous intent if the model gives it at least this.
FOLLOW_UP_FLOOR = 0.10
REFERENCE_KINDS = frozenset({"order_number", "tracking_number"})
WORDS_NEEDED = frozenset(CUES)  # the intents that run a skill or hand off


@dataclass(frozen=True)
class Resolved:
    """The intent chosen, its confidence, why, and the question to search the KB with."""

    intent: str
    confidence: float
    source: str  # "model" | "action" | "cue" | "soft" | "follow_up" | "oos" | "unsure"
    query: str | None = None  # set when the KB should be searched with more than the text


def _best(prediction: IntentPrediction) -> tuple[str, float]:
    if prediction.top:
        intent, p = prediction.top[0]
        return intent, float(p)
    return prediction.intent, float(prediction.confidence)


def _probability(prediction: IntentPrediction, intent: str) -> float:
    return next((float(p) for i, p in prediction.top if i == intent), 0.0)


def resolve_intent(
    text: str,
    prediction: IntentPrediction,
    floor: float,
    *,
    entity_kinds: Iterable[str] = (),
    intents: Iterable[str] = (),
    remembered_order: bool = False,
    previous: tuple[str, IntentPrediction] | None = None,
) -> Resolved:
    """The intent of `text` given the model's `prediction` of it.

    `intents` are the tenant's intents (cues only name those), `remembered_order` whether
    the conversation has an order to refer back to, and `previous` the customer's
    previous message with the model's prediction of it.
    """
    known = set(intents) or {i for i, _ in prediction.top}
    best, p_best = _best(prediction)
    kinds = set(entity_kinds)
    cued = cue_intents(text, known)
    named = bool(kinds & REFERENCE_KINDS) or (remembered_order and refers_back(text))
    if named and cued & set(ACTION_PRIORITY):
        action = next(a for a in ACTION_PRIORITY if a in cued)
        if STATUS_QUESTION.search(text) and "order_status" in known:
            action = "order_status"
        elif best in cued and best in ACTION_PRIORITY and p_best >= floor:
            action = best  # the model is sure of another action named here: keep it
        return Resolved(action, max(p_best if action == best else 0.0, floor), "action")
    # A follow-up is searched for with the question it follows, whatever its intent:
    # "what about Germany?" alone matches any passage naming Germany.
    query = f"{previous[0]} {text}" if previous is not None and is_follow_up(text) else None
    if prediction.intent != OOS and p_best >= floor:
        return Resolved(best, p_best, "model", query)
    if prediction.intent != OOS and p_best >= SOFT_FLOOR:
        # The model's own out-of-scope check passed and its best intent leads clearly:
        # a few-shot model is under-confident, not wrong, there (0.70-0.87 for a plain
        # "thanks, bye!" or "可以用花呗分期吗?"). An intent that acts (a skill, a handoff)
        # still needs its words: "is there a discount on my first order?" is no lookup.
        if best not in WORDS_NEEDED or best in cued:
            return Resolved(best, p_best, "cue" if best in cued else "soft", query)
    if previous is not None and query is not None:
        earlier, _ = _best(previous[1])
        p_now = _probability(prediction, earlier)
        if earlier != OOS and (p_now >= FOLLOW_UP_FLOOR or p_now >= p_best):
            return Resolved(earlier, max(p_now, p_best), "follow_up", query)
    # The model itself said out of scope ("tell me a joke"), or nothing led clearly.
    return Resolved(OOS, p_best, "oos" if prediction.intent == OOS else "unsure", query)
