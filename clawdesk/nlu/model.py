"""The intent classifier: (fine-tuned) sentence embeddings ‖ char ‖ word n-grams → linear head.

Pipeline::

    text ─┬─ TextEncoder (MiniLM, contrastively fine-tuned) ── 384-d unit vector ─┐
          ├─ [multilingual-e5-small, centred; tenants writing Chinese] 384-d ──┤
          ├─ CharNgrams (char_wb 2–4-gram TF-IDF) ─────────── sparse unit vector ─┼─ LR ─ softmax
          └─ WordNgrams (word 1–2-gram TF-IDF) ────────────── sparse unit vector ─┘

The weights of the two n-gram blocks are chosen on the validation set (see
:attr:`ClassifierConfig.ngram_weight_grid`).

A message is out of scope (intent ``"oos"``) when its in-scope score is below
``threshold``, or when the head itself ranks the ``oos`` class first (possible only when the
training data has ``oos`` examples).  The in-scope score is the best in-scope probability
fused with the cosine to the nearest in-scope training example (:mod:`clawdesk.nlu.oos`;
the probability alone without embeddings or with ``knn_fusion=False``).  The threshold is
chosen on a validation set – pooled with the training set's own oos examples, scored by
heads that never saw them – never on the data used to report results (see
:meth:`IntentClassifier.calibrate`).

Thread-safety: :meth:`IntentClassifier.predict` takes a lock, so an asyncio service can
run it in a thread executor from many coroutines; calls are serialised, which is what
you want on a small CPU (torch already uses every core for one batch).  Batch messages for
throughput: one call with 64 texts costs far less than 64 calls with one.
"""

from __future__ import annotations

import asyncio
import dataclasses
import json
import logging
import threading
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

import numpy as np
from pydantic import BaseModel, ConfigDict, field_validator

from clawdesk.kb.packaged_models import is_packaged
from clawdesk.nlu.multilingual import AUTO, MultilingualEmbeddings, resolve_multilingual
from clawdesk.nlu.oos import ScoreFusion, nearest_cosine
from clawdesk.nlu.training.calibration import fit_temperature, temper
from clawdesk.nlu.training.features import (
    PACKAGED_MODEL,
    CharNgrams,
    FinetuneConfig,
    TextEncoder,
    WordNgrams,
    combine,
    seed_everything,
)

if TYPE_CHECKING:
    from rich.progress import Progress
    from scipy import sparse

__all__ = [
    "OOS",
    "ClassifierConfig",
    "IntentClassifier",
    "IntentExample",
    "IntentPrediction",
    "choose_threshold",
    "msp_parts",
    "wilson_lower_bound",
]

log = logging.getLogger(__name__)

OOS = "oos"
FORMAT_VERSION = 1
KNN_BANK_FILE = "knn_bank.npy"
FeatureSet = Literal["combined", "embedding", "char"]
# z of a one-sided 95 % confidence bound: with ``min_oos_recall`` the threshold must reach
# the required recall even at the low end of what ~100 validation oos rows can tell.
_RECALL_Z = 1.645


class IntentExample(BaseModel):
    """One labelled utterance."""

    model_config = ConfigDict(frozen=True)

    text: str
    intent: str

    @field_validator("text", "intent")
    @classmethod
    def _not_blank(cls, v: str) -> str:
        if not v.strip():
            raise ValueError("must not be blank")
        return v


@dataclass(frozen=True)
class IntentPrediction:
    """The decision for one text.

    ``intent`` is ``"oos"`` when rejected (decided by the in-scope score, see the module
    docstring); ``confidence`` is the probability of the best in-scope intent, tempered to
    be calibrated (:mod:`clawdesk.nlu.training.calibration`; also when rejected, so callers can log
    near misses); ``top`` is the best in-scope intents with their probabilities, best first.
    """

    intent: str
    confidence: float
    top: list[tuple[str, float]]


@dataclass
class ClassifierConfig:
    """How to build the classifier.  Defaults were chosen on validation splits only."""

    features: FeatureSet = "combined"
    encoder: str = PACKAGED_MODEL
    # A frozen multilingual encoder whose (centred) vectors join the encoder's: "auto"
    # adds multilingual-e5-small when over 5 % of the training texts are not English
    # (clawdesk.nlu.multilingual), "" never, a name always.  fit() stores its decision.
    multilingual: str = AUTO
    finetune: bool = True
    finetune_config: FinetuneConfig = field(default_factory=FinetuneConfig)
    ngram_range: tuple[int, int] = (2, 4)
    word_ngram_range: tuple[int, int] = (1, 2)
    embedding_weight: float = 1.0
    char_weight: float = 1.0
    word_weight: float = 0.0  # 0 = no word n-grams
    # With a validation set, "combined" picks (char weight, word weight) from these pairs
    # ((0, 0) = embeddings only); the chosen pair is stored in char_weight/word_weight.
    # Char n-grams help most with many examples per intent, word bigrams a little more
    # on top; with ten per intent neither helps much, hence a validation decision.
    ngram_weight_grid: tuple[tuple[float, float], ...] = (
        (0.0, 0.0),
        (0.5, 0.0),
        (1.0, 0.0),
        (0.5, 0.5),
        (1.0, 1.0),
    )
    C: float = 10.0  # inverse L2 strength of the logistic-regression head
    max_iter: int = 3000
    oos_label: str = OOS
    # Train an explicit "oos" class when the training set has oos examples.
    oos_class: bool = True
    threshold: float | None = None  # fixed threshold; None = calibrate
    # Without any oos example to calibrate on, keep this share of in-scope validation
    # messages (the usual "TPR 95" operating point of out-of-distribution detection).
    in_scope_keep: float = 0.95
    # With oos rows in the validation set: None = balance in-scope accuracy and oos
    # recall; a number = the best in-scope accuracy that reaches this oos recall.
    target_oos_recall: float | None = None
    # A required oos recall: the best in-scope accuracy whose validation oos recall
    # reaches it with 95 % confidence (one-sided Wilson bound).  A validation set has few
    # oos rows (CLINC150: 100), so its observed recall is a noisy estimate; this rule
    # asks for a margin that shrinks as the validation set grows.  Overrides
    # target_oos_recall.
    min_oos_recall: float | None = None
    # Fuse the head's probability with the cosine to the nearest in-scope training
    # example for the oos decision (only with embeddings; see clawdesk.nlu.oos).  Keeps
    # the training embeddings in the model: 3 KB per example with a 768-d encoder.
    knn_fusion: bool = True
    # Folds for scoring the training set's own oos rows with heads that did not see them,
    # so they can join the validation oos rows in calibration.
    oos_crossfit_folds: int = 5
    # Report confidences tempered to be calibrated (clawdesk.nlu.training.calibration), fitted on
    # valid or, without it, on the training file's cross-validated predictions.
    calibrate_confidence: bool = True
    top_k: int = 3
    batch_size: int = 64
    seed: int = 0

    def to_dict(self) -> dict[str, Any]:
        """Plain-JSON form."""
        d = asdict(self)
        d["ngram_range"] = list(self.ngram_range)
        d["word_ngram_range"] = list(self.word_ngram_range)
        d["ngram_weight_grid"] = [list(p) for p in self.ngram_weight_grid]
        return d

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> ClassifierConfig:
        """Inverse of :meth:`to_dict`; unknown keys are ignored (forward compatibility)."""
        known = {f.name for f in fields(cls)}
        kw = {k: v for k, v in data.items() if k in known}
        if "finetune_config" in kw and isinstance(kw["finetune_config"], dict):
            ft_known = {f.name for f in fields(FinetuneConfig)}
            kw["finetune_config"] = FinetuneConfig(
                **{k: v for k, v in kw["finetune_config"].items() if k in ft_known}
            )
        if "ngram_weight_grid" in kw:
            kw["ngram_weight_grid"] = tuple(
                (float(c), float(w)) for c, w in kw["ngram_weight_grid"]
            )
        for key in ("ngram_range", "word_ngram_range"):
            if key in kw:
                lo, hi = kw[key]
                kw[key] = (int(lo), int(hi))
        # Models saved before the multilingual block had none (not "decide again").
        kw.setdefault("multilingual", "")
        return cls(**kw)


def _softmax(logits: np.ndarray) -> np.ndarray:
    z = logits - logits.max(axis=1, keepdims=True)
    np.exp(z, out=z)
    z /= z.sum(axis=1, keepdims=True)
    return z


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


def msp_parts(
    probs: np.ndarray, classes: Sequence[str] | np.ndarray, oos_label: str
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Per row of ``probs`` (columns in ``classes`` order): the best in-scope probability,
    the best in-scope intent, and whether the head ranks ``oos_label`` first."""
    names = np.asarray(classes)
    in_mask = names != oos_label
    p_in = np.where(in_mask[None, :], probs, -1.0)
    best_idx = p_in.argmax(axis=1)
    scores = p_in[np.arange(len(probs)), best_idx]
    head_oos = ~in_mask[probs.argmax(axis=1)]
    return scores, names[best_idx], head_oos


def _rates_at(
    scores: np.ndarray, correct: np.ndarray, is_oos: np.ndarray, threshold: float
) -> tuple[float, float | None]:
    """In-scope accuracy (right and kept) and oos recall (None without oos rows) of the
    rows of :func:`choose_threshold` at ``threshold``."""
    kept = scores >= threshold
    in_scope_acc = float((correct & kept).sum() / max(1, int((~is_oos).sum())))
    recall = float((~kept & is_oos).sum() / is_oos.sum()) if is_oos.any() else None
    return in_scope_acc, recall


def wilson_lower_bound(successes: np.ndarray, n: int, z: float = _RECALL_Z) -> np.ndarray:
    """One-sided Wilson score lower bound of a proportion (``successes`` out of ``n``)."""
    k = np.asarray(successes, dtype=np.float64)
    p = k / n
    denom = 1.0 + z * z / n
    centre = (p + z * z / (2 * n)) / denom
    half = z * np.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / denom
    return np.asarray(centre - half)


class IntentClassifier:
    """Intent classifier with out-of-scope rejection.  See the module docstring."""

    def __init__(self, config: ClassifierConfig | None = None) -> None:
        # A copy: fit() records what it chose on validation data in its config.
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

    # ------------------------------------------------------------------ training

    def fit(
        self,
        examples: Sequence[IntentExample],
        *,
        valid: Sequence[IntentExample] | None = None,
        progress: Progress | None = None,
        encoder: TextEncoder | None = None,
    ) -> IntentClassifier:
        """Train on ``examples`` and calibrate the oos threshold on ``valid``.

        Examples labelled ``config.oos_label`` are not an intent: they never take part in
        the contrastive fine-tuning (out-of-scope messages have nothing in common) and
        only become a head class when ``config.oos_class`` is set.  Without ``valid`` the
        threshold is calibrated by 3-fold cross-validation of the head on ``examples``
        (optimistic when the encoder was fine-tuned on them).  Pass ``encoder`` to reuse an
        already (fine-)tuned encoder; it is then not fine-tuned again.
        """
        cfg = self.config
        seed_everything(cfg.seed)
        examples = list(examples)
        in_scope = [e for e in examples if e.intent != cfg.oos_label]
        if len({e.intent for e in in_scope}) < 2:
            raise ValueError("need examples of at least two in-scope intents")
        train = examples if cfg.oos_class else in_scope
        t0 = time.perf_counter()
        self.info = {"n_train": len(train), "n_intents": len({e.intent for e in in_scope})}

        embeddings = None
        valid_embeddings = None
        # Without embeddings there is no block to add the multilingual one to.
        in_texts = [e.text for e in in_scope]
        cfg.multilingual = (
            resolve_multilingual(cfg.multilingual, in_texts) if self.uses_embeddings else ""
        )
        self.info["multilingual"] = cfg.multilingual or None
        train_ml_raw = None
        if self.uses_embeddings:
            if cfg.multilingual:
                # Embedded once: the in-scope rows' mean centres the block, and the
                # centred rows join the training embeddings below.
                self.multilingual = MultilingualEmbeddings(cfg.multilingual, np.zeros(0))
                train_ml_raw = self.multilingual.raw([e.text for e in train])
                in_rows = np.asarray([e.intent != cfg.oos_label for e in train])
                self.multilingual.mean = train_ml_raw[in_rows].mean(axis=0).astype(np.float32)
            if encoder is None:
                encoder = TextEncoder.load(cfg.encoder)
                if cfg.finetune:
                    ft = encoder.finetune(
                        [e.text for e in in_scope],
                        [e.intent for e in in_scope],
                        cfg.finetune_config,
                        progress=progress,
                    )
                    self.info["finetune"] = ft
            self.encoder = encoder
            self.info["finetune_seconds"] = round(time.perf_counter() - t0, 1)
            embeddings = self._embed(
                [e.text for e in train],
                progress=progress,
                description="encoding train",
                multilingual_raw=train_ml_raw,
            )
            if valid is not None:
                valid_embeddings = self._embed(
                    [e.text for e in valid], progress=progress, description="encoding valid"
                )
        texts, labels = [e.text for e in train], [e.intent for e in train]
        if self.uses_knn and embeddings is not None:
            in_rows = np.asarray([label != cfg.oos_label for label in labels])
            self.knn_bank = np.ascontiguousarray(embeddings[in_rows], dtype=np.float32)
        grid = cfg.ngram_weight_grid if self.config.features == "combined" else ()
        if valid is not None and len(grid) > 1:
            self._select_ngram_weights(texts, labels, embeddings, valid, valid_embeddings, grid)
        else:
            self.fit_head(texts, labels, embeddings=embeddings)

        if cfg.threshold is not None:
            self.threshold = cfg.threshold
        elif valid is not None:
            heldout = self._score_train_oos(texts, labels, embeddings, progress=progress)
            self.calibrate(valid, embeddings=valid_embeddings, heldout_oos=heldout)
        else:
            self._calibrate_by_cv(texts, labels, embeddings)
        if self.fusion is None:
            self.knn_bank = None  # a fixed or probability-only threshold never reads it
        self.info["train_seconds"] = round(time.perf_counter() - t0, 1)
        return self

    def _select_ngram_weights(
        self,
        texts: list[str],
        labels: list[str],
        embeddings: np.ndarray | None,
        valid: Sequence[IntentExample],
        valid_embeddings: np.ndarray | None,
        grid: Sequence[tuple[float, float]],
    ) -> None:
        """Fit one head per (char, word) n-gram weight pair and keep the best on ``valid``.

        How much the n-grams help depends on the data (a lot with many examples, not at
        all with ten per intent), so the weights are a validation decision, not constants.
        The vectorizers are fitted once; only the head is refitted per pair.
        """
        cfg = self.config
        char = CharNgrams(cfg.ngram_range).fit(texts) if any(c for c, _ in grid) else None
        word = WordNgrams(cfg.word_ngram_range).fit(texts) if any(w for _, w in grid) else None
        valid_texts = [e.text for e in valid]
        gold = np.asarray([e.intent for e in valid])

        def blocks(rows: list[str]) -> tuple[Any, Any]:
            return (
                char.transform(rows) if char is not None else None,
                word.transform(rows) if word is not None else None,
            )

        train_blocks, valid_blocks = blocks(texts), blocks(valid_texts)
        valid_cos = self._nearest(valid_embeddings)
        is_oos = gold == cfg.oos_label
        results: dict[str, float] = {}
        best: tuple[float, Any] | None = None
        for c, w in grid:
            cfg.char_weight, cfg.word_weight = float(c), float(w)
            self._fit_lr(self._stack(embeddings, *train_blocks), labels)
            probs = self._proba(self._stack(valid_embeddings, *valid_blocks))
            self.fusion = self._fit_fusion(probs, valid_cos, is_oos)
            objective = self._objective(*self._valid_parts(probs, gold, valid_cos))
            results[f"char={c:g},word={w:g}"] = round(objective, 5)
            if best is None or objective > best[0] + 1e-9:
                best = (objective, (float(c), float(w), self.coef, self.intercept, self.classes))
        assert best is not None
        c, w, self.coef, self.intercept, self.classes = best[1]
        self.fusion = None  # standardised on the last pair tried; calibration sets it anew
        cfg.char_weight, cfg.word_weight = c, w
        self.char_ngrams = char if c > 0 else None
        self.word_ngrams = word if w > 0 else None
        self.info["ngram_weight_selection"] = {
            "valid_objective": results,
            "chosen": {"char": c, "word": w},
        }

    def _valid_parts(
        self, probs: np.ndarray, gold: np.ndarray, cos: np.ndarray | None = None
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Scores, "head right" and "gold is oos" per validation row, for calibration."""
        scores, best, head_oos = self._decide_parts(probs, cos)
        is_oos = gold == self.config.oos_label
        correct = (best == gold) & ~head_oos & ~is_oos
        # Rows the head already sends to oos are rejected whatever the threshold.
        return np.where(head_oos, -1.0, scores), correct, is_oos

    def _pick_threshold(self, scores: np.ndarray, correct: np.ndarray, is_oos: np.ndarray) -> float:
        cfg = self.config
        return choose_threshold(
            scores,
            correct,
            is_oos,
            in_scope_keep=cfg.in_scope_keep,
            target_oos_recall=cfg.target_oos_recall,
            min_oos_recall=cfg.min_oos_recall,
        )

    def _objective(self, scores: np.ndarray, correct: np.ndarray, is_oos: np.ndarray) -> float:
        """How good a head is on validation rows, judged at the threshold it would get.

        Without oos rows: closed-set accuracy.  With oos rows: the quantity the
        configured threshold rule optimises – in-scope accuracy when a recall is required,
        else the mean of in-scope accuracy and oos recall.
        """
        if not is_oos.any():
            return float(correct[~is_oos].mean())
        in_scope_acc, recall = _rates_at(
            scores, correct, is_oos, self._pick_threshold(scores, correct, is_oos)
        )
        if self.config.min_oos_recall is not None or self.config.target_oos_recall is not None:
            return in_scope_acc
        return (in_scope_acc + (recall or 0.0)) / 2

    def fit_head(
        self,
        texts: Sequence[str],
        labels: Sequence[str],
        *,
        embeddings: np.ndarray | None = None,
    ) -> None:
        """Fit the n-gram vectorizers and the logistic-regression head (the encoder stays)."""
        cfg = self.config
        self.char_ngrams = CharNgrams(cfg.ngram_range).fit(texts) if self.uses_char_ngrams else None
        self.word_ngrams = (
            WordNgrams(cfg.word_ngram_range).fit(texts) if self.uses_word_ngrams else None
        )
        self._fit_lr(self._features(texts, embeddings), labels)

    def _fit_lr(self, x: sparse.csr_matrix, labels: Sequence[str]) -> None:
        from sklearn.linear_model import LogisticRegression

        cfg = self.config
        head = LogisticRegression(C=cfg.C, max_iter=cfg.max_iter, random_state=cfg.seed)
        head.fit(x, np.asarray(labels))
        self.classes = [str(c) for c in head.classes_]
        coef = np.asarray(head.coef_, dtype=np.float32)
        intercept = np.asarray(head.intercept_, dtype=np.float32)
        if len(self.classes) == 2:  # sklearn keeps one row for binary problems
            coef = np.vstack([-coef[0] / 2, coef[0] / 2])
            intercept = np.array([-intercept[0] / 2, intercept[0] / 2], dtype=np.float32)
        self.coef, self.intercept = coef, intercept

    def calibrate(
        self,
        valid: Sequence[IntentExample],
        *,
        embeddings: np.ndarray | None = None,
        progress: Progress | None = None,
        heldout_oos: tuple[np.ndarray, np.ndarray | None] | None = None,
    ) -> float:
        """Choose and set the oos threshold from labelled validation examples.

        ``heldout_oos`` – head probabilities and nearest-neighbour cosines of further oos
        messages the head never saw (the training set's own, see :meth:`fit`) – joins the
        validation oos rows: a recall read off 100 rows is a noisy estimate, and a second
        independent sample of oos messages makes the threshold less a matter of which
        messages happened to land in the validation split.
        """
        texts = [e.text for e in valid]
        gold = np.asarray([e.intent for e in valid])
        probs, cos = self._infer(texts, embeddings=embeddings, progress=progress)
        self._fit_temperature(probs, gold, "valid")
        self.fusion = self._fit_fusion(probs, cos, gold == self.config.oos_label)
        scores, correct, is_oos = self._valid_parts(probs, gold, cos)
        n_valid = len(scores)
        if heldout_oos is not None and len(heldout_oos[0]):
            h_scores, _, h_head_oos = self._decide_parts(*heldout_oos)
            scores = np.concatenate([scores, np.where(h_head_oos, -1.0, h_scores)])
            correct = np.concatenate([correct, np.zeros(len(h_scores), dtype=bool)])
            is_oos = np.concatenate([is_oos, np.ones(len(h_scores), dtype=bool)])
        self.threshold = self._pick_threshold(scores, correct, is_oos)
        self.info["threshold_from"] = "valid" + (
            " + held-out train oos" if len(scores) > n_valid else ""
        )
        self.info["n_valid"] = len(valid)
        self.info["oos_score"] = self._oos_score_name()
        # What the threshold does on valid, to set beside the test figures: a large gap
        # says the validation rows are easier than the data the model will meet.
        in_scope_acc, recall = _rates_at(
            scores[:n_valid], correct[:n_valid], is_oos[:n_valid], self.threshold
        )
        self.info["valid_at_threshold"] = {
            "in_scope_accuracy": round(in_scope_acc, 5),
            "oos_recall": None if recall is None else round(recall, 5),
            "n_oos": int(is_oos[:n_valid].sum()),
        }
        if len(scores) > n_valid:
            self.info["valid_at_threshold"]["heldout_train_oos_recall"] = round(
                float((scores[n_valid:] < self.threshold).mean()), 5
            )
            self.info["valid_at_threshold"]["n_heldout_train_oos"] = len(scores) - n_valid
        return self.threshold

    def _score_train_oos(
        self,
        texts: list[str],
        labels: list[str],
        embeddings: np.ndarray | None,
        *,
        progress: Progress | None = None,
    ) -> tuple[np.ndarray, np.ndarray | None] | None:
        """Head probabilities and nearest cosines of the training set's oos rows, each
        from a head that did not see it (``oos_crossfit_folds``-fold cross-fitting when
        the head has an ``oos`` class; the fitted head as is when it has none).

        The encoder never sees oos rows either (fine-tuning leaves them out) and the
        nearest-neighbour bank holds in-scope rows only, so the scores are held out.
        """
        cfg = self.config
        y = np.asarray(labels)
        oos_rows = np.flatnonzero(y == cfg.oos_label)
        if len(oos_rows) == 0:
            return None
        x = self._features(texts, embeddings)
        cos = self._nearest(None if embeddings is None else embeddings[oos_rows])
        if cfg.oos_label not in self.classes:
            return self._proba(x[oos_rows]), cos
        folds = min(cfg.oos_crossfit_folds, len(oos_rows))
        if folds < 2:
            return None  # holding out the only oos row would drop the class
        fitted = (self.coef, self.intercept, self.classes)
        probs = np.zeros((len(oos_rows), len(self.classes)))
        parts = np.array_split(np.random.default_rng(cfg.seed).permutation(len(oos_rows)), folds)
        task = progress.add_task("scoring train oos rows", total=folds) if progress else None
        try:
            for part in parts:
                keep = np.setdiff1d(np.arange(len(y)), oos_rows[part])
                self._fit_lr(x[keep], list(y[keep]))
                if self.classes != fitted[2]:
                    raise RuntimeError("cross-fitted head lost a class")
                probs[part] = self._proba(x[oos_rows[part]])
                if progress is not None and task is not None:
                    progress.advance(task)
        finally:
            self.coef, self.intercept, self.classes = fitted
            if progress is not None and task is not None:
                progress.remove_task(task)
        return probs, cos

    def _calibrate_by_cv(
        self, texts: list[str], labels: list[str], embeddings: np.ndarray | None
    ) -> None:
        from sklearn.linear_model import LogisticRegression
        from sklearn.model_selection import StratifiedKFold

        cfg = self.config
        y = np.asarray(labels)
        _, counts = np.unique(y, return_counts=True)
        folds = int(min(3, counts.min()))
        if folds < 2:
            self.threshold = 0.0
            self.info["threshold_from"] = "none (too few examples)"
            return
        msp = np.zeros(len(y))
        oof = np.zeros((len(y), len(self.classes)))  # out-of-fold probabilities
        column = {c: i for i, c in enumerate(self.classes)}
        head_oos = np.zeros(len(y), dtype=bool)
        correct = np.zeros(len(y), dtype=bool)
        use_cos = self.uses_knn and embeddings is not None
        cos = np.zeros(len(y))
        x = self._features(texts, embeddings)
        skf = StratifiedKFold(n_splits=folds, shuffle=True, random_state=cfg.seed)
        for tr, te in skf.split(np.zeros(len(y)), y):
            head = LogisticRegression(C=cfg.C, max_iter=cfg.max_iter)
            head.fit(x[tr], y[tr])
            # The fold head's own classes: a fold may lack a rare intent.
            fold_probs = head.predict_proba(x[te])
            msp[te], best, head_oos[te] = msp_parts(fold_probs, head.classes_, cfg.oos_label)
            oof[np.ix_(te, [column[str(c)] for c in head.classes_])] = fold_probs
            correct[te] = (best == y[te]) & ~head_oos[te]
            if use_cos:
                assert embeddings is not None
                # The fold's own bank: a row must not find itself.
                bank = embeddings[tr][y[tr] != cfg.oos_label]
                cos[te] = self._cosine(embeddings[te], bank)
        is_oos = y == cfg.oos_label
        self.fusion = (
            ScoreFusion.fit(msp[~is_oos], cos[~is_oos]) if use_cos and (~is_oos).any() else None
        )
        scores = self.fusion(msp, cos) if self.fusion is not None else msp
        self.threshold = self._pick_threshold(np.where(head_oos, -1.0, scores), correct, is_oos)
        self.info["threshold_from"] = f"{folds}-fold cross-validation on train"
        self._fit_temperature(oof, y, f"{folds}-fold cross-validation on train")
        self.info["oos_score"] = self._oos_score_name()

    def _fit_temperature(self, probs: np.ndarray, gold: np.ndarray, source: str) -> None:
        """Temper the reported confidences so that they are calibrated on held-out rows
        (those whose gold label is one of the head's classes)."""
        if not self.config.calibrate_confidence:
            return
        column = {c: i for i, c in enumerate(self.classes)}
        rows = np.asarray([g in column for g in gold], dtype=bool)
        idx = np.asarray([column[g] for g in gold[rows]], dtype=np.int64)
        self.temperature = fit_temperature(probs[rows], idx)
        self.info["temperature"] = round(self.temperature, 4)
        self.info["temperature_from"] = source

    def _oos_score_name(self) -> str:
        return "msp+nearest-cosine" if self.fusion is not None else "msp"

    def _nearest(self, embeddings: np.ndarray | None) -> np.ndarray | None:
        """Cosine to the nearest in-scope training example (None without a bank).  With
        the multilingual block a row is two unit vectors side by side: the mean of the
        two cosines."""
        if embeddings is None or self.knn_bank is None or not self.uses_knn:
            return None
        return self._cosine(embeddings, self.knn_bank)

    def _cosine(self, embeddings: np.ndarray, bank: np.ndarray) -> np.ndarray:
        """Nearest cosine in the embedding block, whose rows are one unit vector, or two
        side by side with the multilingual block (then the mean of the two cosines)."""
        parts = 2 if self.multilingual is not None else 1
        return nearest_cosine(embeddings, bank) / parts

    def _fit_fusion(
        self, probs: np.ndarray, cos: np.ndarray | None, is_oos: np.ndarray
    ) -> ScoreFusion | None:
        """The score fusion standardised on the in-scope calibration rows (None = msp)."""
        if cos is None or not (~is_oos).any():
            return None
        msp, _, _ = self._msp_parts(probs)
        return ScoreFusion.fit(msp[~is_oos], cos[~is_oos])

    # ------------------------------------------------------------------ inference

    def _stack(self, embeddings: np.ndarray | None, chars: Any, words: Any) -> sparse.csr_matrix:
        cfg = self.config
        return combine(
            embeddings if self.uses_embeddings else None,
            chars if cfg.char_weight > 0 else None,
            embedding_weight=cfg.embedding_weight,
            char_weight=cfg.char_weight,
            word_features=words if cfg.word_weight > 0 else None,
            word_weight=cfg.word_weight,
        )

    def _embed(
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

    def _features(self, texts: Sequence[str], embeddings: np.ndarray | None) -> sparse.csr_matrix:
        if self.uses_embeddings and embeddings is None:
            embeddings = self._embed(texts)
        chars = words = None
        if self.uses_char_ngrams:
            if self.char_ngrams is None:
                raise RuntimeError("classifier is not fitted")
            chars = self.char_ngrams.transform(texts)
        if self.uses_word_ngrams:
            if self.word_ngrams is None:
                raise RuntimeError("classifier is not fitted")
            words = self.word_ngrams.transform(texts)
        return self._stack(embeddings, chars, words)

    def _proba(self, x: sparse.csr_matrix) -> np.ndarray:
        if self.coef is None or self.intercept is None:
            raise RuntimeError("classifier is not fitted")
        logits = np.asarray(x @ self.coef.T) + self.intercept
        return _softmax(logits.astype(np.float64))

    def predict_proba(
        self,
        texts: Sequence[str],
        *,
        embeddings: np.ndarray | None = None,
        progress: Progress | None = None,
    ) -> np.ndarray:
        """Head probabilities, shape ``(len(texts), len(self.classes))``."""
        return self._infer(texts, embeddings=embeddings, progress=progress)[0]

    def in_scope_scores(
        self, texts: Sequence[str], *, embeddings: np.ndarray | None = None
    ) -> np.ndarray:
        """The score ``threshold`` applies to, per text: the head's best in-scope
        probability, or its fusion with the nearest-neighbour cosine (module docstring)."""
        with self._lock:
            probs, cos = self._infer(list(texts), embeddings=embeddings)
        return self._decide_parts(probs, cos)[0]

    def _infer(
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
            embeddings = self._embed(texts, progress=progress)
        return self._proba(self._features(texts, embeddings)), self._nearest(embeddings)

    def _msp_parts(self, probs: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Best in-scope probability, best in-scope intent and "head says oos" per row."""
        return msp_parts(probs, self.classes, self.config.oos_label)

    def _decide_parts(
        self, probs: np.ndarray, cos: np.ndarray | None = None
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """In-scope score (what the threshold applies to), best in-scope intent and "head
        says oos" per row.  The score is the fused one when calibration set a fusion."""
        msp, best, head_oos = self._msp_parts(probs)
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
            probs, cos = self._infer(texts, embeddings=embeddings, progress=progress)
        return self._to_predictions(probs, cos)

    async def apredict(self, texts: Sequence[str]) -> list[IntentPrediction]:
        """:meth:`predict` in a worker thread, so the event loop is never blocked."""
        return await asyncio.to_thread(self.predict, list(texts))

    def _to_predictions(
        self, probs: np.ndarray, cos: np.ndarray | None = None
    ) -> list[IntentPrediction]:
        if len(probs) == 0:
            return []
        scores, best, head_oos = self._decide_parts(probs, cos)
        # The decision above uses the head's own probabilities (its threshold was chosen
        # on them); what a prediction reports is tempered to be calibrated.
        probs = temper(probs, self.temperature)
        confidence, _, _ = self._msp_parts(probs)
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

    def save(self, directory: str | Path) -> Path:
        """Write the classifier to ``directory`` (created if missing); no pickles."""
        if self.coef is None or self.intercept is None:
            raise RuntimeError("classifier is not fitted")
        d = Path(directory)
        d.mkdir(parents=True, exist_ok=True)
        encoder_ref: str | None = None
        if self.uses_embeddings:
            assert self.encoder is not None
            if self.encoder.finetuned or not is_packaged(self.encoder.source):
                # Fine-tuned weights belong to this model, and a directory may change or
                # go away; copy them in.  A packaged model is found again by its name.
                self.encoder.save(d / "encoder")
                encoder_ref = "encoder"
            else:
                encoder_ref = self.encoder.source
        if self.multilingual is not None:
            self.multilingual.save(d)
        if self.char_ngrams is not None:
            self.char_ngrams.save(d)
        if self.word_ngrams is not None:
            self.word_ngrams.save(d)
        np.savez(d / "head.npz", coef=self.coef, intercept=self.intercept)
        if self.knn_bank is not None:
            np.save(d / KNN_BANK_FILE, self.knn_bank)
        meta = {
            "format_version": FORMAT_VERSION,
            "config": self.config.to_dict(),
            "classes": self.classes,
            "threshold": self.threshold,
            "temperature": self.temperature,
            "fusion": None if self.fusion is None else self.fusion.to_dict(),
            "encoder": encoder_ref,
            "info": self.info,
        }
        (d / "classifier.json").write_text(
            json.dumps(meta, indent=2, ensure_ascii=False), encoding="utf-8"
        )
        return d

    @classmethod
    def load(cls, directory: str | Path) -> IntentClassifier:
        """Load a classifier written by :meth:`save`."""
        d = Path(directory)
        meta = json.loads((d / "classifier.json").read_text(encoding="utf-8"))
        if meta.get("format_version") != FORMAT_VERSION:
            raise ValueError(f"unsupported classifier format: {meta.get('format_version')}")
        clf = cls(ClassifierConfig.from_dict(meta["config"]))
        clf.classes = list(meta["classes"])
        clf.threshold = float(meta["threshold"])
        clf.temperature = float(meta.get("temperature", 1.0))  # 1.0: saved before tempering
        clf.info = dict(meta.get("info", {}))
        head = np.load(d / "head.npz")
        clf.coef = head["coef"].astype(np.float32)
        clf.intercept = head["intercept"].astype(np.float32)
        if (d / KNN_BANK_FILE).exists():
            clf.knn_bank = np.ascontiguousarray(np.load(d / KNN_BANK_FILE), dtype=np.float32)
        if meta.get("fusion"):  # absent in models saved before the fusion existed
            clf.fusion = ScoreFusion.from_dict(meta["fusion"])
            if clf.knn_bank is None:
                # Fail here, not on every message the nlu stage hands to predict().
                raise ValueError(f"model {d} is incomplete: its oos score needs {KNN_BANK_FILE}")
        ref = meta.get("encoder")
        if ref == "encoder":
            clf.encoder = TextEncoder.load(d / "encoder")
            clf.encoder.finetuned = True
        elif ref is not None:
            clf.encoder = TextEncoder.load(ref)
        if clf.config.multilingual and clf.uses_embeddings:
            clf.multilingual = MultilingualEmbeddings.load(clf.config.multilingual, d)
        if clf.uses_char_ngrams:
            clf.char_ngrams = CharNgrams.load(d)
        if clf.uses_word_ngrams:
            clf.word_ngrams = WordNgrams.load(d)
        clf._drop_zero_weight_columns()
        return clf

    def _drop_zero_weight_columns(self) -> None:
        """Models saved before zero-weight blocks were left out kept a char block whose
        features were multiplied by 0; its columns never mattered, so drop them."""
        cfg = self.config
        if self.coef is None or cfg.features != "combined" or cfg.char_weight or cfg.word_weight:
            return
        width = self.encoder.dim if self.encoder is not None else 0
        if self.multilingual is not None:
            width += len(self.multilingual.mean)
        if self.coef.shape[1] > width:
            self.coef = np.ascontiguousarray(self.coef[:, :width])
