"""Choosing the weights of the n-gram blocks on validation data.

How much the n-grams help depends on the data (a lot with many examples, not at all with
ten per intent), so the weights are a validation decision, not constants
(:attr:`~clawdesk.nlu.config.ClassifierConfig.ngram_weight_grid`).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from clawdesk.nlu.model import IntentClassifier
from clawdesk.nlu.ngrams import CharNgrams, WordNgrams
from clawdesk.nlu.training.examples import IntentExample
from clawdesk.nlu.training.head import fit_lr
from clawdesk.nlu.training.oos_calibration import fit_fusion, valid_parts
from clawdesk.nlu.training.thresholds import objective

__all__ = ["select_ngram_weights"]


def select_ngram_weights(
    clf: IntentClassifier,
    texts: list[str],
    labels: list[str],
    embeddings: np.ndarray | None,
    valid: Sequence[IntentExample],
    valid_embeddings: np.ndarray | None,
    grid: Sequence[tuple[float, float]],
) -> None:
    """Fit one head per (char, word) n-gram weight pair and keep the best on ``valid``.

    The vectorizers are fitted once; only the head is refitted per pair.  The chosen pair
    is written into ``clf.config`` (and ``clf.info["ngram_weight_selection"]``).
    """
    cfg = clf.config
    char = CharNgrams(cfg.ngram_range).fit(texts) if any(c for c, _ in grid) else None
    word = WordNgrams(cfg.word_ngram_range).fit(texts) if any(w for _, w in grid) else None

    def blocks(rows: list[str]) -> tuple[Any, Any]:
        return (
            char.transform(rows) if char is not None else None,
            word.transform(rows) if word is not None else None,
        )

    train_blocks, valid_blocks = blocks(texts), blocks([e.text for e in valid])
    gold = np.asarray([e.intent for e in valid])
    valid_cos = clf.nearest(valid_embeddings)
    is_oos = gold == cfg.oos_label
    results: dict[str, float] = {}
    best: tuple[float, Any] | None = None
    for c, w in grid:
        cfg.char_weight, cfg.word_weight = float(c), float(w)
        fit_lr(clf, clf.stack(embeddings, *train_blocks), labels)
        probs = clf.proba(clf.stack(valid_embeddings, *valid_blocks))
        clf.fusion = fit_fusion(clf, probs, valid_cos, is_oos)
        score = objective(cfg, *valid_parts(clf, probs, gold, valid_cos))
        results[f"char={c:g},word={w:g}"] = round(score, 5)
        if best is None or score > best[0] + 1e-9:
            best = (score, (float(c), float(w), clf.coef, clf.intercept, clf.classes))
    assert best is not None
    c, w, clf.coef, clf.intercept, clf.classes = best[1]
    clf.fusion = None  # standardised on the last pair tried; calibration sets it anew
    cfg.char_weight, cfg.word_weight = c, w
    clf.char_ngrams = char if c > 0 else None
    clf.word_ngrams = word if w > 0 else None
    clf.info["ngram_weight_selection"] = {
        "valid_objective": results,
        "chosen": {"char": c, "word": w},
    }
