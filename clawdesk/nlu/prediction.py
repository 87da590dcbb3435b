"""What the intent model says about one text (light: no numpy, no torch)."""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["IntentPrediction"]


@dataclass(frozen=True)
class IntentPrediction:
    """The decision for one text.

    ``intent`` is ``"oos"`` when rejected (decided by the in-scope score, see
    :mod:`clawdesk.nlu.model`); ``confidence`` is the probability of the best in-scope
    intent, tempered to be calibrated (:mod:`clawdesk.nlu.confidence`; also when rejected,
    so callers can log near misses); ``top`` is the best in-scope intents with their
    probabilities, best first.
    """

    intent: str
    confidence: float
    top: list[tuple[str, float]]
