"""Fitting the linear head (and the n-gram vocabularies it reads) of an intent model."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from scipy import sparse
from sklearn.linear_model import LogisticRegression

from clawdesk.nlu.model import IntentClassifier
from clawdesk.nlu.ngrams import CharNgrams, WordNgrams

__all__ = ["fit_head", "fit_lr"]


def fit_head(
    clf: IntentClassifier,
    texts: Sequence[str],
    labels: Sequence[str],
    *,
    embeddings: np.ndarray | None = None,
) -> None:
    """Fit the n-gram vectorizers and the logistic-regression head (the encoder stays)."""
    cfg = clf.config
    clf.char_ngrams = CharNgrams(cfg.ngram_range).fit(texts) if clf.uses_char_ngrams else None
    clf.word_ngrams = WordNgrams(cfg.word_ngram_range).fit(texts) if clf.uses_word_ngrams else None
    fit_lr(clf, clf.features(texts, embeddings), labels)


def fit_lr(clf: IntentClassifier, x: sparse.csr_matrix, labels: Sequence[str]) -> None:
    """Fit the head on feature rows ``x`` and set ``clf``'s classes, coef and intercept."""
    cfg = clf.config
    head = LogisticRegression(C=cfg.C, max_iter=cfg.max_iter, random_state=cfg.seed)
    head.fit(x, np.asarray(labels))
    clf.classes = [str(c) for c in head.classes_]
    coef = np.asarray(head.coef_, dtype=np.float32)
    intercept = np.asarray(head.intercept_, dtype=np.float32)
    if len(clf.classes) == 2:  # sklearn keeps one row for binary problems
        coef = np.vstack([-coef[0] / 2, coef[0] / 2])
        intercept = np.array([-intercept[0] / 2, intercept[0] / 2], dtype=np.float32)
    clf.coef, clf.intercept = coef, intercept
