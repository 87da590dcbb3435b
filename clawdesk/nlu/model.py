"""The fitted intent model: (fine-tuned) sentence embeddings ‖ char ‖ word n-grams → linear head.

Pipeline::

    text ─┬─ TextEncoder (MiniLM, contrastively fine-tuned) ── 384-d unit vector ─┐
          ├─ [multilingual-e5-small, centred; tenants writing Chinese] 384-d ──┤
          ├─ CharNgrams (char_wb 2–4-gram TF-IDF) ─────────── sparse unit vector ─┼─ LR ─ softmax
          └─ WordNgrams (word 1–2-gram TF-IDF) ────────────── sparse unit vector ─┘

This module is the serving side: the fitted state and what predicting needs.  Fitting
(the n-gram weight search, the head, the threshold, the calibration) lives in
:mod:`clawdesk.nlu.training` (:func:`clawdesk.nlu.training.fit.fit_intent_model`), which
serving never imports; saving and loading in :mod:`clawdesk.nlu.persistence`.

A message is out of scope (intent ``"oos"``) when its in-scope score is below
``threshold``, or when the head itself ranks the ``oos`` class first (possible only when the
training data has ``oos`` examples).  The in-scope score is the best in-scope probability
fused with the cosine to the nearest in-scope training example (:mod:`clawdesk.nlu.oos`;
the probability alone without embeddings or with ``knn_fusion=False``).  The threshold is
chosen on a validation set, never on the data used to report results.

Thread-safety: :meth:`IntentClassifier.predict` takes a lock, so an asyncio service can
run it in a thread executor from many coroutines; calls are serialised, which is what
you want on a small CPU (torch already uses every core for one batch).  Batch messages for
throughput: one call with 64 texts costs far less than 64 calls with one.
"""

from __future__ import annotations

import asyncio
import dataclasses
import threading
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from clawdesk.nlu.confidence import temper
from clawdesk.nlu.config import ClassifierConfig
from clawdesk.nlu.encoder import TextEncoder
from clawdesk.nlu.multilingual import MultilingualEmbeddings
from clawdesk.nlu.ngrams import CharNgrams, WordNgrams, combine
from clawdesk.nlu.oos import ScoreFusion, msp_parts, nearest_cosine
from clawdesk.nlu.persistence import read_meta, restore_classifier, save_classifier
from clawdesk.nlu.prediction import IntentPrediction

if TYPE_CHECKING:
    from rich.progress import Progress
    from scipy import sparse

__all__ = ["IntentClassifier", "softmax"]


def softmax(logits: np.ndarray) -> np.ndarray:
    """Row-wise softmax, in place on ``logits``."""
    z = logits - logits.max(axis=1, keepdims=True)
    np.exp(z, out=z)
    z /= z.sum(axis=1, keepdims=True)
    return z


class IntentClassifier:
    """A fitted intent classifier with out-of-scope rejection.  See the module docstring.

    Built by :func:`clawdesk.nlu.training.fit.fit_intent_model` or :meth:`load`.
    """

    def __init__(self, config: ClassifierConfig | None = None) -> None:
        # A copy: training records what it chose on validation data in its config.
        self.config = dataclasses.replace(config) if config is not None else ClassifierConfig()
        self.encoder: TextEncoder | None = None
        self.multilingual: MultilingualEmbeddings | None = None
        self.char_ngrams: CharNgrams | None = None
        self.word_ngrams: WordNgrams | None = None
        self.classes: list[str] = []
        self.coef: np.ndarray | None = None  # (n_classes, n_features) float32
        self.intercept: np.ndarray | None = None  # (n_classes,)
        self.threshold: float = 0.0 if self.config.threshold is None else self.config.threshold
        self.info: dict[str, Any] = {}  # training facts for reports and manifests
        self.knn_bank: np.ndarray | None = None  # unit-norm in-scope training embeddings
        self.fusion: ScoreFusion | None = None  # set by calibration when the bank is used
        self.temperature = 1.0  # of the reported confidences, not of the oos decision
        self._lock = threading.Lock()

    # ------------------------------------------------------------------ properties

    @property
    def uses_embeddings(self) -> bool:
        """Whether the sentence encoder is part of the features."""
        return self.config.features in ("combined", "embedding")

    @property
    def uses_char_ngrams(self) -> bool:
        """Whether character n-grams are part of the features."""
        return self.config.features in ("combined", "char") and self.config.char_weight > 0

    @property
    def uses_word_ngrams(self) -> bool:
        """Whether word n-grams are part of the features."""
        return self.config.features in ("combined", "char") and self.config.word_weight > 0

    @property
    def uses_knn(self) -> bool:
        """Whether the oos decision also looks at the nearest training example."""
        return self.config.knn_fusion and self.uses_embeddings

    @property
    def intents(self) -> list[str]:
        """The in-scope intents the classifier can return."""
        return [c for c in self.classes if c != self.config.oos_label]

    # ------------------------------------------------------------------ oos scoring

    def nearest(self, embeddings: np.ndarray | None) -> np.ndarray | None:
        """Cosine to the nearest in-scope training example (None without a bank).  With
        the multilingual block a row is two unit vectors side by side: the mean of the
        two cosines."""
        if embeddings is None or self.knn_bank is None or not self.uses_knn:
            return None
        return self.cosine(embeddings, self.knn_bank)

    def cosine(self, embeddings: np.ndarray, bank: np.ndarray) -> np.ndarray:
        """Nearest cosine in the embedding block, whose rows are one unit vector, or two
        side by side with the multilingual block (then the mean of the two cosines)."""
        parts = 2 if self.multilingual is not None else 1
        return nearest_cosine(embeddings, bank) / parts

    # ------------------------------------------------------------------ inference

    def stack(self, embeddings: np.ndarray | None, chars: Any, words: Any) -> sparse.csr_matrix:
        """The head's input from its blocks, each weighted as configured (0 = left out)."""
        cfg = self.config
        return combine(
            embeddings if self.uses_embeddings else None,
            chars if cfg.char_weight > 0 else None,
            embedding_weight=cfg.embedding_weight,
            char_weight=cfg.char_weight,
            word_features=words if cfg.word_weight > 0 else None,
            word_weight=cfg.word_weight,
        )

    def embed(
        self,
        texts: Sequence[str],
        *,
        progress: Progress | None = None,
        description: str = "encoding",
        multilingual_raw: np.ndarray | None = None,
    ) -> np.ndarray:
        """The embedding block of ``texts``: the encoder's unit vectors, and beside them
        the multilingual block's when the model has one (from ``multilingual_raw``, the
        multilingual model's vectors of ``texts``, when the caller already has them)."""
        if self.encoder is None:
            raise RuntimeError("classifier has no encoder; fit or load it first")
        out = self.encoder.encode(
            texts, batch_size=self.config.batch_size, progress=progress, description=description
        )
        if self.multilingual is not None:
            raw = self.multilingual.raw(texts) if multilingual_raw is None else multilingual_raw
            out = np.hstack([out, self.multilingual.center(raw)])
        return out

    def features(self, texts: Sequence[str], embeddings: np.ndarray | None) -> sparse.csr_matrix:
        """The head's input for ``texts``, transformed as fitted (``embeddings``: their
        embedding block when the caller already has it)."""
        if self.uses_embeddings and embeddings is None:
            embeddings = self.embed(texts)
        chars = words = None
        if self.uses_char_ngrams:
            if self.char_ngrams is None:
                raise RuntimeError("classifier is not fitted")
            chars = self.char_ngrams.transform(texts)
        if self.uses_word_ngrams:
            if self.word_ngrams is None:
                raise RuntimeError("classifier is not fitted")
            words = self.word_ngrams.transform(texts)
        return self.stack(embeddings, chars, words)

    def proba(self, x: sparse.csr_matrix) -> np.ndarray:
        """The head's (untempered) probabilities of feature rows ``x``."""
        if self.coef is None or self.intercept is None:
            raise RuntimeError("classifier is not fitted")
        logits = np.asarray(x @ self.coef.T) + self.intercept
        return softmax(logits.astype(np.float64))

    def predict_proba(
        self,
        texts: Sequence[str],
        *,
        embeddings: np.ndarray | None = None,
        progress: Progress | None = None,
    ) -> np.ndarray:
        """Head probabilities, shape ``(len(texts), len(self.classes))``."""
        return self.infer(texts, embeddings=embeddings, progress=progress)[0]

    def in_scope_scores(
        self, texts: Sequence[str], *, embeddings: np.ndarray | None = None
    ) -> np.ndarray:
        """The score ``threshold`` applies to, per text: the head's best in-scope
        probability, or its fusion with the nearest-neighbour cosine (module docstring)."""
        with self._lock:
            probs, cos = self.infer(list(texts), embeddings=embeddings)
        return self.decide_parts(probs, cos)[0]

    def infer(
        self,
        texts: Sequence[str],
        *,
        embeddings: np.ndarray | None = None,
        progress: Progress | None = None,
    ) -> tuple[np.ndarray, np.ndarray | None]:
        """Head probabilities and (with the bank) nearest in-scope cosines of ``texts``."""
        if self.coef is None or self.intercept is None:
            raise RuntimeError("classifier is not fitted")
        if len(texts) == 0:
            empty = np.zeros(0) if self.knn_bank is not None and self.uses_knn else None
            return np.zeros((0, len(self.classes)), dtype=np.float32), empty
        if embeddings is None and self.uses_embeddings:
            embeddings = self.embed(texts, progress=progress)
        return self.proba(self.features(texts, embeddings)), self.nearest(embeddings)

    def msp_parts(self, probs: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Best in-scope probability, best in-scope intent and "head says oos" per row."""
        return msp_parts(probs, self.classes, self.config.oos_label)

    def decide_parts(
        self, probs: np.ndarray, cos: np.ndarray | None = None
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """In-scope score (what the threshold applies to), best in-scope intent and "head
        says oos" per row.  The score is the fused one when calibration set a fusion."""
        msp, best, head_oos = self.msp_parts(probs)
        if self.fusion is None:
            return msp, best, head_oos
        if cos is None:
            raise RuntimeError("the oos threshold needs nearest-neighbour cosines")
        return self.fusion(msp, cos), best, head_oos

    def predict(
        self,
        texts: Sequence[str],
        *,
        embeddings: np.ndarray | None = None,
        progress: Progress | None = None,
    ) -> list[IntentPrediction]:
        """Classify a batch of texts (thread-safe; see the module docstring)."""
        texts = list(texts)
        with self._lock:
            probs, cos = self.infer(texts, embeddings=embeddings, progress=progress)
        return self._to_predictions(probs, cos)

    async def apredict(self, texts: Sequence[str]) -> list[IntentPrediction]:
        """:meth:`predict` in a worker thread, so the event loop is never blocked."""
        return await asyncio.to_thread(self.predict, list(texts))

    def _to_predictions(
        self, probs: np.ndarray, cos: np.ndarray | None = None
    ) -> list[IntentPrediction]:
        """The predictions of rows with head probabilities ``probs`` and cosines ``cos``."""
        if len(probs) == 0:
            return []
        scores, best, head_oos = self.decide_parts(probs, cos)
        # The decision above uses the head's own probabilities (its threshold was chosen
        # on them); what a prediction reports is tempered to be calibrated.
        probs = temper(probs, self.temperature)
        confidence, _, _ = self.msp_parts(probs)
        classes = self.classes
        in_idx = np.array([i for i, c in enumerate(classes) if c != self.config.oos_label])
        k = min(self.config.top_k, len(in_idx))
        out: list[IntentPrediction] = []
        for row, score, conf, intent, is_oos in zip(
            probs, scores, confidence, best, head_oos, strict=True
        ):
            order = in_idx[np.argsort(-row[in_idx], kind="stable")[:k]]
            top = [(classes[i], float(row[i])) for i in order]
            reject = bool(is_oos) or float(score) < self.threshold
            out.append(
                IntentPrediction(
                    intent=self.config.oos_label if reject else str(intent),
                    confidence=float(conf),
                    top=top,
                )
            )
        return out

    # ------------------------------------------------------------------ persistence

    # ------------------------------------------------------------------ persistence

    def save(self, directory: str | Path) -> Path:
        """Write the classifier to ``directory`` (created if missing); no pickles."""
        return save_classifier(self, directory)

    @classmethod
    def load(cls, directory: str | Path) -> IntentClassifier:
        """Load a classifier written by :meth:`save` (by any release since format 1)."""
        meta = read_meta(directory)
        clf = cls(ClassifierConfig.from_dict(meta["config"]))
        restore_classifier(clf, directory, meta)
        return clf
