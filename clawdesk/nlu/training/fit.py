"""Fitting an intent model: :func:`fit_intent_model`.

The steps, each in its own module: the encoder is (optionally) fine-tuned
(:mod:`~clawdesk.nlu.training.finetune`) and embeds the examples; the n-gram weights are
chosen on validation data (:mod:`~clawdesk.nlu.training.ngram_search`) and the head is
fitted (:mod:`~clawdesk.nlu.training.head`); the oos threshold, score fusion and
confidence temperature are calibrated on held-out rows
(:mod:`~clawdesk.nlu.training.oos_calibration`).  The result is a serving
:class:`~clawdesk.nlu.model.IntentClassifier`.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from typing import TYPE_CHECKING

import numpy as np

from clawdesk.nlu.config import ClassifierConfig
from clawdesk.nlu.encoder import TextEncoder
from clawdesk.nlu.model import IntentClassifier
from clawdesk.nlu.multilingual import MultilingualEmbeddings
from clawdesk.nlu.training.examples import IntentExample
from clawdesk.nlu.training.finetune import finetune_encoder, seed_everything
from clawdesk.nlu.training.head import fit_head
from clawdesk.nlu.training.multilingual import resolve_multilingual
from clawdesk.nlu.training.ngram_search import select_ngram_weights
from clawdesk.nlu.training.oos_calibration import calibrate, calibrate_by_cv, score_train_oos

if TYPE_CHECKING:
    from rich.progress import Progress

__all__ = ["fit_intent_model"]


def fit_intent_model(
    examples: Sequence[IntentExample],
    config: ClassifierConfig | None = None,
    *,
    valid: Sequence[IntentExample] | None = None,
    progress: Progress | None = None,
    encoder: TextEncoder | None = None,
) -> IntentClassifier:
    """Train a classifier on ``examples`` and calibrate its oos threshold on ``valid``.

    Examples labelled ``config.oos_label`` are not an intent: they never take part in
    the contrastive fine-tuning (out-of-scope messages have nothing in common) and
    only become a head class when ``config.oos_class`` is set.  Without ``valid`` the
    threshold is calibrated by 3-fold cross-validation of the head on ``examples``
    (optimistic when the encoder was fine-tuned on them).  Pass ``encoder`` to reuse an
    already (fine-)tuned encoder; it is then not fine-tuned again.  ``config`` is copied:
    the returned model's config records what was chosen on validation data.
    """
    clf = IntentClassifier(config)
    cfg = clf.config
    seed_everything(cfg.seed)
    examples = list(examples)
    in_scope = [e for e in examples if e.intent != cfg.oos_label]
    if len({e.intent for e in in_scope}) < 2:
        raise ValueError("need examples of at least two in-scope intents")
    train = examples if cfg.oos_class else in_scope
    t0 = time.perf_counter()
    clf.info = {"n_train": len(train), "n_intents": len({e.intent for e in in_scope})}
    # Without embeddings there is no block to add the multilingual one to.
    cfg.multilingual = (
        resolve_multilingual(cfg.multilingual, [e.text for e in in_scope])
        if clf.uses_embeddings
        else ""
    )
    clf.info["multilingual"] = cfg.multilingual or None
    embeddings = valid_embeddings = None
    if clf.uses_embeddings:
        embeddings, valid_embeddings = _embed_training(
            clf, train, in_scope, valid, encoder=encoder, progress=progress, t0=t0
        )
    texts, labels = [e.text for e in train], [e.intent for e in train]
    if clf.uses_knn and embeddings is not None:
        in_rows = np.asarray([label != cfg.oos_label for label in labels])
        clf.knn_bank = np.ascontiguousarray(embeddings[in_rows], dtype=np.float32)
    grid = cfg.ngram_weight_grid if cfg.features == "combined" else ()
    if valid is not None and len(grid) > 1:
        select_ngram_weights(clf, texts, labels, embeddings, valid, valid_embeddings, grid)
    else:
        fit_head(clf, texts, labels, embeddings=embeddings)
    _calibrate(clf, texts, labels, embeddings, valid, valid_embeddings, progress)
    if clf.fusion is None:
        clf.knn_bank = None  # a fixed or probability-only threshold never reads it
    clf.info["train_seconds"] = round(time.perf_counter() - t0, 1)
    return clf


def _embed_training(
    clf: IntentClassifier,
    train: list[IntentExample],
    in_scope: list[IntentExample],
    valid: Sequence[IntentExample] | None,
    *,
    encoder: TextEncoder | None,
    progress: Progress | None,
    t0: float,
) -> tuple[np.ndarray, np.ndarray | None]:
    """Set ``clf``'s multilingual block and (fine-tuned) encoder; return the embedding
    blocks of the training and validation texts."""
    cfg = clf.config
    train_ml_raw = None
    if cfg.multilingual:
        # Embedded once: the in-scope rows' mean centres the block, and the centred
        # rows join the training embeddings below.
        clf.multilingual = MultilingualEmbeddings(cfg.multilingual, np.zeros(0))
        train_ml_raw = clf.multilingual.raw([e.text for e in train])
        in_rows = np.asarray([e.intent != cfg.oos_label for e in train])
        clf.multilingual.mean = train_ml_raw[in_rows].mean(axis=0).astype(np.float32)
    if encoder is None:
        encoder = TextEncoder.load(cfg.encoder)
        if cfg.finetune:
            clf.info["finetune"] = finetune_encoder(
                encoder,
                [e.text for e in in_scope],
                [e.intent for e in in_scope],
                cfg.finetune_config,
                progress=progress,
            )
    clf.encoder = encoder
    clf.info["finetune_seconds"] = round(time.perf_counter() - t0, 1)
    embeddings = clf.embed(
        [e.text for e in train],
        progress=progress,
        description="encoding train",
        multilingual_raw=train_ml_raw,
    )
    valid_embeddings = None
    if valid is not None:
        valid_embeddings = clf.embed(
            [e.text for e in valid], progress=progress, description="encoding valid"
        )
    return embeddings, valid_embeddings


def _calibrate(
    clf: IntentClassifier,
    texts: list[str],
    labels: list[str],
    embeddings: np.ndarray | None,
    valid: Sequence[IntentExample] | None,
    valid_embeddings: np.ndarray | None,
    progress: Progress | None,
) -> None:
    """The oos threshold: fixed by the config, else on valid, else by cross-validation."""
    if clf.config.threshold is not None:
        clf.threshold = clf.config.threshold
    elif valid is not None:
        heldout = score_train_oos(clf, texts, labels, embeddings, progress=progress)
        calibrate(clf, valid, embeddings=valid_embeddings, heldout_oos=heldout)
    else:
        calibrate_by_cv(clf, texts, labels, embeddings)
