"""Calibrating a fitted head: the oos score fusion, the oos threshold and the temperature.

Three sources of held-out rows, best first:

* a validation set (:func:`calibrate`), pooled with the training set's own oos rows scored
  by heads that never saw them (:func:`score_train_oos`, cross-fitted);
* without one, the training set's out-of-fold predictions (:func:`calibrate_by_cv`).

The threshold is never chosen on the data used to report results.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

import numpy as np
from sklearn.linear_model import LogisticRegression
from sklearn.model_selection import StratifiedKFold

from clawdesk.nlu.model import IntentClassifier
from clawdesk.nlu.oos import ScoreFusion, msp_parts
from clawdesk.nlu.training.calibration import fit_temperature
from clawdesk.nlu.training.examples import IntentExample
from clawdesk.nlu.training.head import fit_lr
from clawdesk.nlu.training.thresholds import pick_threshold, rates_at

if TYPE_CHECKING:
    from rich.progress import Progress

__all__ = [
    "HeldOut",
    "calibrate",
    "calibrate_by_cv",
    "fit_fusion",
    "score_train_oos",
    "valid_parts",
]

# Head probabilities and (with the nearest-neighbour bank) cosines of held-out rows.
HeldOut = tuple[np.ndarray, np.ndarray | None]


def fit_fusion(
    clf: IntentClassifier, probs: np.ndarray, cos: np.ndarray | None, is_oos: np.ndarray
) -> ScoreFusion | None:
    """The score fusion standardised on the in-scope calibration rows (None = msp)."""
    if cos is None or not (~is_oos).any():
        return None
    msp, _, _ = clf.msp_parts(probs)
    return ScoreFusion.fit(msp[~is_oos], cos[~is_oos])


def valid_parts(
    clf: IntentClassifier, probs: np.ndarray, gold: np.ndarray, cos: np.ndarray | None = None
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Scores, "head right" and "gold is oos" per validation row, for calibration."""
    scores, best, head_oos = clf.decide_parts(probs, cos)
    is_oos = gold == clf.config.oos_label
    correct = (best == gold) & ~head_oos & ~is_oos
    # Rows the head already sends to oos are rejected whatever the threshold.
    return np.where(head_oos, -1.0, scores), correct, is_oos


def fit_confidence_temperature(
    clf: IntentClassifier, probs: np.ndarray, gold: np.ndarray, source: str
) -> None:
    """Temper the reported confidences so that they are calibrated on held-out rows
    (those whose gold label is one of the head's classes)."""
    if not clf.config.calibrate_confidence:
        return
    column = {c: i for i, c in enumerate(clf.classes)}
    rows = np.asarray([g in column for g in gold], dtype=bool)
    idx = np.asarray([column[g] for g in gold[rows]], dtype=np.int64)
    clf.temperature = fit_temperature(probs[rows], idx)
    clf.info["temperature"] = round(clf.temperature, 4)
    clf.info["temperature_from"] = source


def _oos_score_name(clf: IntentClassifier) -> str:
    return "msp+nearest-cosine" if clf.fusion is not None else "msp"


def calibrate(
    clf: IntentClassifier,
    valid: Sequence[IntentExample],
    *,
    embeddings: np.ndarray | None = None,
    progress: Progress | None = None,
    heldout_oos: HeldOut | None = None,
) -> float:
    """Choose and set ``clf``'s oos threshold (and temperature) from validation examples.

    ``heldout_oos`` – head probabilities and nearest-neighbour cosines of further oos
    messages the head never saw (the training set's own, see :func:`score_train_oos`) –
    joins the validation oos rows: a recall read off 100 rows is a noisy estimate, and a
    second independent sample of oos messages makes the threshold less a matter of which
    messages happened to land in the validation split.
    """
    gold = np.asarray([e.intent for e in valid])
    probs, cos = clf.infer([e.text for e in valid], embeddings=embeddings, progress=progress)
    fit_confidence_temperature(clf, probs, gold, "valid")
    clf.fusion = fit_fusion(clf, probs, cos, gold == clf.config.oos_label)
    scores, correct, is_oos = valid_parts(clf, probs, gold, cos)
    n_valid = len(scores)
    if heldout_oos is not None and len(heldout_oos[0]):
        h_scores, _, h_head_oos = clf.decide_parts(*heldout_oos)
        scores = np.concatenate([scores, np.where(h_head_oos, -1.0, h_scores)])
        correct = np.concatenate([correct, np.zeros(len(h_scores), dtype=bool)])
        is_oos = np.concatenate([is_oos, np.ones(len(h_scores), dtype=bool)])
    clf.threshold = pick_threshold(clf.config, scores, correct, is_oos)
    clf.info["threshold_from"] = "valid" + (
        " + held-out train oos" if len(scores) > n_valid else ""
    )
    clf.info["n_valid"] = len(valid)
    clf.info["oos_score"] = _oos_score_name(clf)
    clf.info["valid_at_threshold"] = _at_threshold(clf.threshold, scores, correct, is_oos, n_valid)
    return clf.threshold


def _at_threshold(
    threshold: float, scores: np.ndarray, correct: np.ndarray, is_oos: np.ndarray, n_valid: int
) -> dict[str, float | int | None]:
    """What the threshold does on valid (the first ``n_valid`` rows) and on the held-out
    train oos rows after them, to set beside the test figures: a large gap says the
    validation rows are easier than the data the model will meet."""
    in_scope_acc, recall = rates_at(
        scores[:n_valid], correct[:n_valid], is_oos[:n_valid], threshold
    )
    out: dict[str, float | int | None] = {
        "in_scope_accuracy": round(in_scope_acc, 5),
        "oos_recall": None if recall is None else round(recall, 5),
        "n_oos": int(is_oos[:n_valid].sum()),
    }
    if len(scores) > n_valid:
        out["heldout_train_oos_recall"] = round(float((scores[n_valid:] < threshold).mean()), 5)
        out["n_heldout_train_oos"] = len(scores) - n_valid
    return out


def score_train_oos(
    clf: IntentClassifier,
    texts: list[str],
    labels: list[str],
    embeddings: np.ndarray | None,
    *,
    progress: Progress | None = None,
) -> HeldOut | None:
    """Head probabilities and nearest cosines of the training set's oos rows, each
    from a head that did not see it (``oos_crossfit_folds``-fold cross-fitting when
    the head has an ``oos`` class; the fitted head as is when it has none).

    The encoder never sees oos rows either (fine-tuning leaves them out) and the
    nearest-neighbour bank holds in-scope rows only, so the scores are held out.
    """
    cfg = clf.config
    y = np.asarray(labels)
    oos_rows = np.flatnonzero(y == cfg.oos_label)
    if len(oos_rows) == 0:
        return None
    x = clf.features(texts, embeddings)
    cos = clf.nearest(None if embeddings is None else embeddings[oos_rows])
    if cfg.oos_label not in clf.classes:
        return clf.proba(x[oos_rows]), cos
    folds = min(cfg.oos_crossfit_folds, len(oos_rows))
    if folds < 2:
        return None  # holding out the only oos row would drop the class
    fitted = (clf.coef, clf.intercept, clf.classes)
    probs = np.zeros((len(oos_rows), len(clf.classes)))
    parts = np.array_split(np.random.default_rng(cfg.seed).permutation(len(oos_rows)), folds)
    task = progress.add_task("scoring train oos rows", total=folds) if progress else None
    try:
        for part in parts:
            keep = np.setdiff1d(np.arange(len(y)), oos_rows[part])
            fit_lr(clf, x[keep], list(y[keep]))
            if clf.classes != fitted[2]:
                raise RuntimeError("cross-fitted head lost a class")
            probs[part] = clf.proba(x[oos_rows[part]])
            if progress is not None and task is not None:
                progress.advance(task)
    finally:
        clf.coef, clf.intercept, clf.classes = fitted
        if progress is not None and task is not None:
            progress.remove_task(task)
    return probs, cos


def calibrate_by_cv(
    clf: IntentClassifier, texts: list[str], labels: list[str], embeddings: np.ndarray | None
) -> None:
    """Set ``clf``'s fusion, threshold and temperature from out-of-fold predictions on
    its own training rows (up to 3 folds; optimistic when the encoder was fine-tuned on
    them).  With fewer than two examples of some intent, no threshold at all."""
    y = np.asarray(labels)
    _, counts = np.unique(y, return_counts=True)
    folds = int(min(3, counts.min()))
    if folds < 2:
        clf.threshold = 0.0
        clf.info["threshold_from"] = "none (too few examples)"
        return
    oof, msp, cos, correct, head_oos = _out_of_fold(clf, texts, y, embeddings, folds)
    is_oos = y == clf.config.oos_label
    has_in_scope = bool((~is_oos).any())
    clf.fusion = (
        ScoreFusion.fit(msp[~is_oos], cos[~is_oos]) if cos is not None and has_in_scope else None
    )
    scores = clf.fusion(msp, cos) if clf.fusion is not None and cos is not None else msp
    clf.threshold = pick_threshold(clf.config, np.where(head_oos, -1.0, scores), correct, is_oos)
    source = f"{folds}-fold cross-validation on train"
    clf.info["threshold_from"] = source
    fit_confidence_temperature(clf, oof, y, source)
    clf.info["oos_score"] = _oos_score_name(clf)


def _out_of_fold(
    clf: IntentClassifier,
    texts: list[str],
    y: np.ndarray,
    embeddings: np.ndarray | None,
    folds: int,
) -> tuple[np.ndarray, np.ndarray, np.ndarray | None, np.ndarray, np.ndarray]:
    """Per training row, from a fold head that did not see it: probabilities (in
    ``clf.classes`` order), best in-scope probability, nearest cosine to the fold's own
    in-scope bank (None without the bank), "head right" and "head says oos"."""
    cfg = clf.config
    msp = np.zeros(len(y))
    oof = np.zeros((len(y), len(clf.classes)))
    column = {c: i for i, c in enumerate(clf.classes)}
    head_oos = np.zeros(len(y), dtype=bool)
    correct = np.zeros(len(y), dtype=bool)
    cos = np.zeros(len(y)) if clf.uses_knn and embeddings is not None else None
    x = clf.features(texts, embeddings)
    skf = StratifiedKFold(n_splits=folds, shuffle=True, random_state=cfg.seed)
    for tr, te in skf.split(np.zeros(len(y)), y):
        head = LogisticRegression(C=cfg.C, max_iter=cfg.max_iter)
        head.fit(x[tr], y[tr])
        # The fold head's own classes: a fold may lack a rare intent.
        fold_probs = head.predict_proba(x[te])
        msp[te], best, head_oos[te] = msp_parts(fold_probs, head.classes_, cfg.oos_label)
        oof[np.ix_(te, [column[str(c)] for c in head.classes_])] = fold_probs
        correct[te] = (best == y[te]) & ~head_oos[te]
        if cos is not None and embeddings is not None:
            # The fold's own bank: a row must not find itself.
            bank = embeddings[tr][y[tr] != cfg.oos_label]
            cos[te] = clf.cosine(embeddings[te], bank)
    return oof, msp, cos, correct, head_oos
