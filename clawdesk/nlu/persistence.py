"""Saving and loading a fitted :class:`~clawdesk.nlu.model.IntentClassifier`.

A saved model is a directory of JSON and ``.npy`` files – no pickles, so no class paths:
``classifier.json`` (config, classes, threshold, temperature, fusion, encoder reference,
training facts), ``head.npz``, the n-gram vocabularies, the nearest-neighbour bank and,
when fine-tuned, the encoder's weights.  The format is the one of every release since
format 1 (before the serving/training split too, see
``tests/nlu/fixtures/saved_398b064``); what older releases left out gets its old meaning
on load.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from clawdesk.kb.packaged_models import is_packaged
from clawdesk.nlu.encoder import TextEncoder
from clawdesk.nlu.multilingual import MultilingualEmbeddings
from clawdesk.nlu.ngrams import CharNgrams, WordNgrams
from clawdesk.nlu.oos import ScoreFusion

if TYPE_CHECKING:  # the model calls in here; it is not imported back
    from clawdesk.nlu.model import IntentClassifier

__all__ = [
    "FORMAT_VERSION",
    "KNN_BANK_FILE",
    "META_FILE",
    "read_meta",
    "restore_classifier",
    "save_classifier",
]

FORMAT_VERSION = 1
META_FILE = "classifier.json"
HEAD_FILE = "head.npz"
KNN_BANK_FILE = "knn_bank.npy"
ENCODER_DIR = "encoder"


def save_classifier(clf: IntentClassifier, directory: str | Path) -> Path:
    """Write ``clf`` to ``directory`` (created if missing) and return the directory."""
    if clf.coef is None or clf.intercept is None:
        raise RuntimeError("classifier is not fitted")
    d = Path(directory)
    d.mkdir(parents=True, exist_ok=True)
    encoder_ref = _save_encoder(clf, d)
    if clf.multilingual is not None:
        clf.multilingual.save(d)
    for block in (clf.char_ngrams, clf.word_ngrams):
        if block is not None:
            block.save(d)
    np.savez(d / HEAD_FILE, coef=clf.coef, intercept=clf.intercept)
    if clf.knn_bank is not None:
        np.save(d / KNN_BANK_FILE, clf.knn_bank)
    meta = {
        "format_version": FORMAT_VERSION,
        "config": clf.config.to_dict(),
        "classes": clf.classes,
        "threshold": clf.threshold,
        "temperature": clf.temperature,
        "fusion": None if clf.fusion is None else clf.fusion.to_dict(),
        "encoder": encoder_ref,
        "info": clf.info,
    }
    (d / META_FILE).write_text(json.dumps(meta, indent=2, ensure_ascii=False), encoding="utf-8")
    return d


def _save_encoder(clf: IntentClassifier, d: Path) -> str | None:
    """Save the encoder's weights when they belong to this model; return its reference."""
    if not clf.uses_embeddings:
        return None
    if clf.encoder is None:
        raise RuntimeError("classifier uses embeddings but has no encoder")
    if clf.encoder.finetuned or not is_packaged(clf.encoder.source):
        # Fine-tuned weights belong to this model, and a directory may change or go
        # away; copy them in.  A packaged model is found again by its name.
        clf.encoder.save(d / ENCODER_DIR)
        return ENCODER_DIR
    return clf.encoder.source


def read_meta(directory: str | Path) -> dict[str, Any]:
    """The ``classifier.json`` of a saved model, checked for a format this code reads."""
    meta: dict[str, Any] = json.loads((Path(directory) / META_FILE).read_text(encoding="utf-8"))
    if meta.get("format_version") != FORMAT_VERSION:
        raise ValueError(f"unsupported classifier format: {meta.get('format_version')}")
    return meta


def restore_classifier(clf: IntentClassifier, directory: str | Path, meta: dict[str, Any]) -> None:
    """Fill ``clf`` (built from ``meta``'s config) with the state saved in ``directory``."""
    d = Path(directory)
    clf.classes = list(meta["classes"])
    clf.threshold = float(meta["threshold"])
    clf.temperature = float(meta.get("temperature", 1.0))  # 1.0: saved before tempering
    clf.info = dict(meta.get("info", {}))
    head = np.load(d / HEAD_FILE)
    clf.coef = head["coef"].astype(np.float32)
    clf.intercept = head["intercept"].astype(np.float32)
    _load_oos_scoring(clf, d, meta)
    clf.encoder = _load_encoder(d, meta.get("encoder"))
    if clf.config.multilingual and clf.uses_embeddings:
        clf.multilingual = MultilingualEmbeddings.load(clf.config.multilingual, d)
    if clf.uses_char_ngrams:
        clf.char_ngrams = CharNgrams.load(d)
    if clf.uses_word_ngrams:
        clf.word_ngrams = WordNgrams.load(d)
    _drop_zero_weight_columns(clf)


def _load_oos_scoring(clf: IntentClassifier, d: Path, meta: dict[str, Any]) -> None:
    """The nearest-neighbour bank and the score fusion, when the model has them."""
    if (d / KNN_BANK_FILE).exists():
        clf.knn_bank = np.ascontiguousarray(np.load(d / KNN_BANK_FILE), dtype=np.float32)
    fusion = meta.get("fusion")
    if not fusion:  # absent in models saved before the fusion existed
        return
    clf.fusion = ScoreFusion.from_dict(fusion)
    if clf.knn_bank is None:
        # Fail here, not on every message the nlu stage hands to predict().
        raise ValueError(f"model {d} is incomplete: its oos score needs {KNN_BANK_FILE}")


def _load_encoder(d: Path, ref: object) -> TextEncoder | None:
    """The encoder a saved model refers to: its own weights, a packaged model or none."""
    if ref == ENCODER_DIR:
        encoder = TextEncoder.load(d / ENCODER_DIR)
        encoder.finetuned = True
        return encoder
    return TextEncoder.load(str(ref)) if ref is not None else None


def _drop_zero_weight_columns(clf: IntentClassifier) -> None:
    """Models saved before zero-weight blocks were left out kept a char block whose
    features were multiplied by 0; its columns never mattered, so drop them."""
    cfg = clf.config
    if clf.coef is None or cfg.features != "combined" or cfg.char_weight or cfg.word_weight:
        return
    width = clf.encoder.dim if clf.encoder is not None else 0
    if clf.multilingual is not None:
        width += len(clf.multilingual.mean)
    if clf.coef.shape[1] > width:
        clf.coef = np.ascontiguousarray(clf.coef[:, :width])
