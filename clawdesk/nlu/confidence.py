"""Tempered confidences: the head's probabilities with its logits divided by the fitted
temperature (fitting: :mod:`clawdesk.nlu.training.calibration`).

Tempering moves every probability but never the ranking within a message; the oos
decision reads the untempered ones (its threshold was chosen on them).
"""

from __future__ import annotations

import numpy as np

__all__ = ["EPS", "temper"]

# Floor of a probability before its logarithm is taken.
EPS = 1e-12


def temper(probs: np.ndarray, temperature: float) -> np.ndarray:
    """``softmax(logits / T)`` from ``softmax(logits)``: the log-probabilities differ from
    the logits by a per-row constant, which the softmax ignores."""
    if temperature == 1.0 or len(probs) == 0:
        return probs
    z = np.log(np.maximum(np.asarray(probs, dtype=np.float64), EPS)) / temperature
    z -= z.max(axis=1, keepdims=True)
    np.exp(z, out=z)
    z /= z.sum(axis=1, keepdims=True)
    return z
