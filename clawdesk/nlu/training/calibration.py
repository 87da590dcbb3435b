"""Fitting the confidence calibration of the intent head: temperature scaling and its measure.

A logistic-regression head's probabilities are not calibrated as they come: with ten
examples per intent and a mild L2 penalty it is under-confident on new messages, with
thousands of examples it can be over-confident.  The nlu stage compares a message's
confidence with a fixed floor (``CLAWDESK_NLU_MIN_CONFIDENCE``), and an agent reading
"0.8" should be able to take it as "right four times in five".  Temperature scaling (Guo
et al. 2017, "On calibration of modern neural networks") divides the head's logits by one
number fitted on held-out messages by their log-likelihood (applied when serving by
:func:`clawdesk.nlu.confidence.temper`); it moves every probability
but never the ranking within a message, so the best intent stays the best.

The oos decision does not use the tempered probabilities: its score and threshold are
calibrated on their own (:mod:`clawdesk.nlu.oos`), and the published figures rest on them.
"""

from __future__ import annotations

import numpy as np
from scipy.optimize import minimize_scalar

from clawdesk.nlu.confidence import EPS, temper

__all__ = ["expected_calibration_error", "fit_temperature"]

# The search range of the temperature: far beyond what a linear head needs either way.
_LOG_T_BOUNDS = (np.log(0.05), np.log(20.0))


def _nll(probs: np.ndarray, gold: np.ndarray, temperature: float) -> float:
    p = temper(probs, temperature)[np.arange(len(gold)), gold]
    return float(-np.mean(np.log(np.maximum(p, EPS))))


def fit_temperature(probs: np.ndarray, gold: np.ndarray) -> float:
    """The temperature that maximises the likelihood of the gold classes (column indices
    ``gold``) of held-out rows; 1.0 when there are none."""
    probs = np.asarray(probs, dtype=np.float64)
    gold = np.asarray(gold, dtype=np.int64)
    if len(gold) == 0:
        return 1.0
    result = minimize_scalar(
        lambda log_t: _nll(probs, gold, float(np.exp(log_t))),
        bounds=_LOG_T_BOUNDS,
        method="bounded",
    )
    return float(np.exp(result.x))


def expected_calibration_error(
    confidence: np.ndarray, correct: np.ndarray, bins: int = 15
) -> float:
    """ECE: the gap between confidence and accuracy, averaged over equal-width confidence
    bins weighted by their share of the rows (Naeini et al. 2015; 15 bins as Guo et al.)."""
    confidence = np.asarray(confidence, dtype=np.float64)
    correct = np.asarray(correct, dtype=np.float64)
    if len(confidence) == 0:
        return float("nan")
    edges = np.linspace(0.0, 1.0, bins + 1)
    which = np.clip(np.searchsorted(edges, confidence, side="left") - 1, 0, bins - 1)
    ece = 0.0
    for b in range(bins):
        rows = which == b
        if rows.any():
            ece += rows.mean() * abs(confidence[rows].mean() - correct[rows].mean())
    return float(ece)
