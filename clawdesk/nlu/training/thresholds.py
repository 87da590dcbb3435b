"""Choosing the oos rejection threshold from validation scores.

The rule is set by :class:`~clawdesk.nlu.config.ClassifierConfig`: balance in-scope
accuracy and oos recall, reach a target recall, reach a required recall with 95 %
confidence, or (without oos rows) keep a share of the in-scope rows.
"""

from __future__ import annotations

import numpy as np

from clawdesk.nlu.config import ClassifierConfig

__all__ = ["choose_threshold", "objective", "pick_threshold", "rates_at", "wilson_lower_bound"]

# z of a one-sided 95 % confidence bound: with ``min_oos_recall`` the threshold must reach
# the required recall even at the low end of what ~100 validation oos rows can tell.
RECALL_Z = 1.645


def choose_threshold(
    scores: np.ndarray,
    correct: np.ndarray,
    is_oos: np.ndarray,
    *,
    in_scope_keep: float = 0.95,
    target_oos_recall: float | None = None,
    min_oos_recall: float | None = None,
) -> float:
    """Pick the rejection threshold from validation results.

    ``scores`` is the best in-scope probability per row, ``correct`` whether the head's
    in-scope choice is right (False for oos rows and for rows the head already sends to
    oos), ``is_oos`` whether the row's gold label is out of scope.

    With oos rows: maximise the mean of in-scope accuracy (right and not rejected) and
    oos recall – both kinds of mistake cost a customer a wrong turn, and the mean does
    not let the (usually few) oos rows be outvoted; or, with ``target_oos_recall``, the
    lowest threshold (best in-scope accuracy) whose oos recall reaches that target; or,
    with ``min_oos_recall``, the lowest threshold whose oos recall reaches that value
    with 95 % confidence (the one-sided Wilson lower bound of the observed recall) – for
    a deployment that has a required oos recall (if no threshold can show it with the
    rows at hand, the one that rejects every validation oos row).  Without oos rows: the
    highest threshold that still keeps ``in_scope_keep`` of the in-scope rows (1.0: no
    rejection at all).
    """
    scores = np.asarray(scores, dtype=np.float64)
    correct = np.asarray(correct, dtype=bool)
    is_oos = np.asarray(is_oos, dtype=bool)
    n_in, n_oos = int((~is_oos).sum()), int(is_oos.sum())
    if n_in == 0:
        raise ValueError("calibration needs in-scope examples")
    if n_oos == 0:
        if in_scope_keep >= 1.0:
            return 0.0  # closed set: never reject
        return float(np.quantile(scores[~is_oos], 1.0 - in_scope_keep))
    # Candidate thresholds: 0 and midpoints between consecutive distinct scores; a row
    # is kept when score >= t.
    uniq = np.unique(scores)
    cands = np.concatenate([[0.0], (uniq[:-1] + uniq[1:]) / 2, [uniq[-1] + 1e-9]])
    in_scores = np.sort(scores[~is_oos & correct])
    oos_scores = np.sort(scores[is_oos])
    kept_correct = len(in_scores) - np.searchsorted(in_scores, cands, side="left")
    rejected_oos = np.searchsorted(oos_scores, cands, side="left")
    if min_oos_recall is not None:
        lower = wilson_lower_bound(rejected_oos, n_oos)
        feasible = np.flatnonzero(lower >= min_oos_recall - 1e-12)
        if len(feasible) == 0:
            feasible = np.flatnonzero(rejected_oos == n_oos)
        return float(cands[feasible[0]])
    if target_oos_recall is not None:
        # recall grows with the threshold; the last candidate rejects everything
        feasible = np.flatnonzero(rejected_oos / n_oos >= target_oos_recall - 1e-12)
        return float(cands[feasible[0]])
    objective = kept_correct / n_in + rejected_oos / n_oos
    best = int(np.argmax(objective))  # first maximum = lowest threshold among ties
    return float(cands[best])


def rates_at(
    scores: np.ndarray, correct: np.ndarray, is_oos: np.ndarray, threshold: float
) -> tuple[float, float | None]:
    """In-scope accuracy (right and kept) and oos recall (None without oos rows) of the
    rows of :func:`choose_threshold` at ``threshold``."""
    kept = scores >= threshold
    in_scope_acc = float((correct & kept).sum() / max(1, int((~is_oos).sum())))
    recall = float((~kept & is_oos).sum() / is_oos.sum()) if is_oos.any() else None
    return in_scope_acc, recall


def wilson_lower_bound(successes: np.ndarray, n: int, z: float = RECALL_Z) -> np.ndarray:
    """One-sided Wilson score lower bound of a proportion (``successes`` out of ``n``)."""
    k = np.asarray(successes, dtype=np.float64)
    p = k / n
    denom = 1.0 + z * z / n
    centre = (p + z * z / (2 * n)) / denom
    half = z * np.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / denom
    return np.asarray(centre - half)


def pick_threshold(
    cfg: ClassifierConfig, scores: np.ndarray, correct: np.ndarray, is_oos: np.ndarray
) -> float:
    """:func:`choose_threshold` with the rule ``cfg`` configures."""
    return choose_threshold(
        scores,
        correct,
        is_oos,
        in_scope_keep=cfg.in_scope_keep,
        target_oos_recall=cfg.target_oos_recall,
        min_oos_recall=cfg.min_oos_recall,
    )


def objective(
    cfg: ClassifierConfig, scores: np.ndarray, correct: np.ndarray, is_oos: np.ndarray
) -> float:
    """How good a head is on validation rows, judged at the threshold it would get.

    Without oos rows: closed-set accuracy.  With oos rows: the quantity the configured
    threshold rule optimises – in-scope accuracy when a recall is required, else the mean
    of in-scope accuracy and oos recall.
    """
    if not is_oos.any():
        return float(correct[~is_oos].mean())
    in_scope_acc, recall = rates_at(
        scores, correct, is_oos, pick_threshold(cfg, scores, correct, is_oos)
    )
    if cfg.min_oos_recall is not None or cfg.target_oos_recall is not None:
        return in_scope_acc
    return (in_scope_acc + (recall or 0.0)) / 2
