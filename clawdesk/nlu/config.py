"""How an intent model is built, as recorded in the saved model (``classifier.json``).

:class:`ClassifierConfig` holds both what serving reads (which feature blocks, their
weights, the oos label, how many top intents) and the training knobs that produced them
(the n-gram weight grid, the threshold rule, fine-tuning settings): a saved model keeps
the whole recipe so that a report can say how it was made.  Training writes its
validation decisions (multilingual block, n-gram weights) back into it.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field, fields, replace
from typing import Any, Literal, get_args, get_type_hints

from clawdesk.nlu.encoder import PACKAGED_MODEL
from clawdesk.nlu.labels import OOS
from clawdesk.nlu.multilingual import AUTO

__all__ = ["ClassifierConfig", "FeatureSet", "FinetuneConfig"]

FeatureSet = Literal["combined", "embedding", "char"]


@dataclass
class FinetuneConfig:
    """Settings of the contrastive fine-tuning of the encoder.

    Each batch holds ``classes_per_batch`` intents with ``per_class`` examples each, so
    every anchor has in-batch positives and no in-batch negative is secretly a positive
    (the flaw of plain MultipleNegativesRankingLoss on labelled data).  The loss is the
    supervised contrastive loss (Khosla et al. 2020) with cosine similarity / temperature.
    """

    # None = by data size: small (few-shot) sets need several passes to move the model,
    # large ones are well served by one pass and would blow the CPU budget with more.
    epochs: float | None = None
    lr: float = 5e-5
    classes_per_batch: int = 32
    per_class: int = 2
    temperature: float = 0.05
    warmup_ratio: float = 0.1
    weight_decay: float = 0.01
    max_grad_norm: float = 1.0
    # The word-embedding matrix is half the model's weights; freezing it keeps words
    # that never occur in the training set where the pretrained model put them, and
    # makes each step cheaper.
    freeze_word_embeddings: bool = True
    bf16: bool | None = None  # None: use bf16 autocast when the CPU supports it natively
    max_steps: int | None = None
    seed: int = 0

    def to_dict(self) -> dict[str, Any]:
        """Plain-JSON form (for manifests and reports)."""
        return asdict(self)

    def with_settings(self, settings: Sequence[str]) -> FinetuneConfig:
        """A copy with ``KEY=VALUE`` settings applied (the CLI's ``--finetune-set``).

        Values are parsed by the field's type; ``none`` clears an optional field.  Raises
        :class:`ValueError` naming the bad setting and, for an unknown key, the known ones.
        """
        hints = get_type_hints(FinetuneConfig)
        changes: dict[str, Any] = {}
        for item in settings:
            key, sep, raw = item.partition("=")
            key, raw = key.strip().replace("-", "_"), raw.strip()
            if not sep or not key:
                raise ValueError(f"fine-tuning setting {item!r} is not KEY=VALUE")
            if key not in hints:
                known = ", ".join(sorted(hints))
                raise ValueError(f"unknown fine-tuning setting {key!r}; known: {known}")
            changes[key] = _parse_setting(key, raw, hints[key])
        return replace(self, **changes)


def _parse_setting(key: str, raw: str, hint: Any) -> Any:
    """``raw`` as a value of the field type ``hint``; pydantic does the string coercion."""
    from pydantic import TypeAdapter, ValidationError

    if type(None) in get_args(hint) and raw.lower() in ("none", "null"):
        return None
    try:
        value = TypeAdapter(hint).validate_python(raw)
    except ValidationError as exc:
        reason = exc.errors()[0]["msg"]
        raise ValueError(f"fine-tuning setting {key}: {reason}, not {raw!r}") from None
    # Every numeric setting (rates, counts, epochs, the seed) is meaningless below zero.
    numeric = isinstance(value, int | float) and not isinstance(value, bool)
    if numeric and (not math.isfinite(value) or value < 0):
        raise ValueError(f"fine-tuning setting {key} needs a finite value >= 0, not {raw!r}")
    return value


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
