"""Evaluation of intent classifiers: accuracy, macro-F1, out-of-scope detection, speed.

Rules kept here so that reported numbers stay honest:

* the oos threshold is chosen on the validation file only (or by cross-validation on the
  training file when there is none) – the test file is read once, after training;
* "accuracy" counts every test row (an oos row is right when predicted ``oos``);
  "in-scope accuracy" counts only in-scope rows, and a rejected in-scope row is wrong –
  the CLINC150 convention;
* throughput is measured end to end (encoding included) on the whole test set in
  batches, the way the service calls the model.
"""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from clawdesk.nlu.config import ClassifierConfig
from clawdesk.nlu.encoder import TextEncoder
from clawdesk.nlu.labels import OOS
from clawdesk.nlu.language import detect_language
from clawdesk.nlu.model import IntentClassifier
from clawdesk.nlu.oos import msp_parts
from clawdesk.nlu.prediction import IntentPrediction
from clawdesk.nlu.training.calibration import expected_calibration_error
from clawdesk.nlu.training.examples import IntentExample, load_examples
from clawdesk.nlu.training.fit import fit_intent_model
from clawdesk.nlu.training.multilingual import resolve_multilingual
from clawdesk.nlu.training.train import make_progress

if TYPE_CHECKING:
    from rich.progress import Progress
    from rich.table import Table

__all__ = [
    "EvalReport",
    "by_language",
    "evaluate",
    "report_table",
    "run_ablation",
    "run_intent_eval",
]


@dataclass
class EvalReport:
    """Figures of one evaluation (fractions in 0..1; ``None`` = not applicable)."""

    n_test: int
    n_in_scope: int
    n_oos: int
    accuracy: float
    in_scope_accuracy: float
    # Best in-scope intent right, ignoring the oos threshold: closed-set accuracy, the
    # figure BANKING77-style benchmarks (no oos rows) report.
    closed_set_accuracy: float
    macro_f1: float
    oos_precision: float | None
    oos_recall: float | None
    classifications_per_second: float
    threshold: float
    name: str = ""
    train_seconds: float | None = None
    extra: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        """Plain-JSON form (e.g. for a model-store manifest)."""
        return dataclasses.asdict(self)


def _macro_f1(gold: np.ndarray, pred: np.ndarray) -> float:
    from sklearn.metrics import f1_score

    # Over the labels of the test set (oos included when present): a label the model
    # never predicts counts as F1 0, one that only appears in predictions is ignored.
    labels = np.unique(gold)
    return float(f1_score(gold, pred, labels=labels, average="macro", zero_division=0))


# A language gets its own figures when the test file has at least this many rows of it.
_MIN_LANGUAGE_ROWS = 5


def by_language(
    texts: Sequence[str], gold: np.ndarray, pred: np.ndarray, oos_label: str
) -> dict[str, dict[str, Any]]:
    """In-scope accuracy and oos recall per detected language of the test texts, when
    the file mixes languages (empty for a one-language file)."""
    langs = np.asarray([detect_language(t) for t in texts])
    names = [str(lang) for lang in np.unique(langs) if (langs == lang).sum() >= _MIN_LANGUAGE_ROWS]
    if len(names) < 2:
        return {}
    out: dict[str, dict[str, Any]] = {}
    for lang in names:
        rows = langs == lang
        in_scope, oos = rows & (gold != oos_label), rows & (gold == oos_label)
        out[lang] = {
            "n": int(rows.sum()),
            "n_oos": int(oos.sum()),
            "in_scope_accuracy": float(np.mean(pred[in_scope] == gold[in_scope]))
            if in_scope.any()
            else None,
            "oos_recall": float(np.mean(pred[oos] == oos_label)) if oos.any() else None,
        }
    return out


def _calibration(
    clf: IntentClassifier,
    texts: list[str],
    preds: list[IntentPrediction],
    right: np.ndarray,
    in_scope: np.ndarray,
) -> dict[str, Any]:
    """ECE of the reported confidence against "the best in-scope intent is right", on the
    in-scope rows, beside the head's untempered probabilities (after the timed run)."""
    if not in_scope.any():
        return {}
    confidence = np.asarray([p.confidence for p in preds])
    raw = clf.predict_proba([t for t, keep in zip(texts, in_scope, strict=True) if keep])
    raw_confidence = msp_parts(raw, clf.classes, clf.config.oos_label)[0]
    return {
        "temperature": clf.temperature,
        "ece": expected_calibration_error(confidence[in_scope], right[in_scope]),
        "ece_untempered": expected_calibration_error(raw_confidence, right[in_scope]),
    }


def evaluate(
    clf: IntentClassifier,
    test_examples: Sequence[IntentExample],
    *,
    name: str = "",
    progress: Progress | None = None,
) -> EvalReport:
    """Classify ``test_examples`` with ``clf`` and compute the figures."""
    texts = [e.text for e in test_examples]
    gold = np.asarray([e.intent for e in test_examples])
    oos = oos_label = clf.config.oos_label
    if len(texts) == 0:
        raise ValueError("empty test set")
    t0 = time.perf_counter()
    preds: list[IntentPrediction] = clf.predict(texts, progress=progress)
    elapsed = time.perf_counter() - t0
    pred = np.asarray([p.intent for p in preds])
    best = np.asarray([p.top[0][0] if p.top else oos_label for p in preds])
    calibration = _calibration(clf, texts, preds, best == gold, gold != oos)
    is_oos = gold == oos
    n_oos = int(is_oos.sum())
    in_scope = ~is_oos
    predicted_oos = pred == oos
    return EvalReport(
        name=name,
        n_test=len(texts),
        n_in_scope=int(in_scope.sum()),
        n_oos=n_oos,
        accuracy=float(np.mean(pred == gold)),
        in_scope_accuracy=float(np.mean(pred[in_scope] == gold[in_scope]))
        if in_scope.any()
        else float("nan"),
        closed_set_accuracy=float(np.mean(best[in_scope] == gold[in_scope]))
        if in_scope.any()
        else float("nan"),
        macro_f1=_macro_f1(gold, pred),
        oos_precision=(
            float((predicted_oos & is_oos).sum() / max(1, predicted_oos.sum())) if n_oos else None
        ),
        oos_recall=float((predicted_oos & is_oos).sum() / n_oos) if n_oos else None,
        classifications_per_second=len(texts) / elapsed if elapsed > 0 else float("inf"),
        threshold=clf.threshold,
        train_seconds=clf.info.get("train_seconds"),
        extra={
            **{
                k: clf.info[k]
                for k in (
                    "finetune_seconds",
                    "threshold_from",
                    "oos_score",
                    "valid_at_threshold",
                    "n_train",
                    "n_intents",
                    "ngram_weight_selection",
                    "finetune",
                    "temperature_from",
                )
                if k in clf.info
            },
            "char_weight": clf.config.char_weight if clf.uses_char_ngrams else None,
            "word_weight": clf.config.word_weight if clf.uses_word_ngrams else None,
            "multilingual": clf.multilingual.name if clf.multilingual is not None else None,
            "by_language": by_language(texts, gold, pred, oos_label),
            **calibration,
        },
    )


def run_intent_eval(
    train_path: str | Path,
    test_path: str | Path,
    valid_path: str | Path | None = None,
    *,
    config: ClassifierConfig | None = None,
    progress: bool = True,
    save_dir: str | Path | None = None,
) -> EvalReport:
    """Train on ``train_path``, choose the oos threshold on ``valid_path``, test once.

    ``save_dir`` keeps the trained classifier.  The test file is only read after training
    and calibration are complete.
    """
    train = load_examples(train_path)
    valid = load_examples(valid_path) if valid_path is not None else None
    with make_progress(progress) as prog:
        clf = fit_intent_model(train, config, valid=valid, progress=prog)
        if save_dir is not None:
            clf.save(save_dir)
        test = load_examples(test_path)
        report = evaluate(clf, test, name=_name(train_path, test_path), progress=prog)
    report.extra["features"] = clf.config.features
    report.extra["finetuned_encoder"] = clf.config.finetune and clf.uses_embeddings
    return report


def run_ablation(
    train_path: str | Path,
    test_path: str | Path,
    valid_path: str | Path | None = None,
    *,
    config: ClassifierConfig | None = None,
    include_frozen: bool = True,
    progress: bool = True,
) -> dict[str, EvalReport]:
    """What each part adds: char n-grams alone, embeddings alone, + char, + word n-grams
    (and, when the training file calls for the multilingual block, the frozen rows once
    more without it: "-ml").

    The encoder is fine-tuned once and shared by the embedding variants; with
    ``include_frozen`` the untuned packaged encoder is measured as well.  Each variant
    gets its own head, its own n-gram weights and its own threshold from ``valid_path``;
    "+char" variants choose among the grid's pairs without word n-grams.
    """
    base = config or ClassifierConfig()
    train = load_examples(train_path)
    valid = load_examples(valid_path) if valid_path is not None else None
    reports: dict[str, EvalReport] = {}
    with make_progress(progress) as prog:
        variants: list[tuple[str, ClassifierConfig, TextEncoder | None]] = []
        char_grid = tuple(p for p in base.ngram_weight_grid if p[1] == 0) or ((1.0, 0.0),)
        variants.append(
            ("char only", dataclasses.replace(base, features="char", word_weight=0.0), None)
        )
        frozen_cfg = dataclasses.replace(base, finetune=False)
        tuned_cfg = dataclasses.replace(base, features="combined")
        tuned = fit_intent_model(train, tuned_cfg, valid=valid, progress=prog)
        encoders = [("tuned", tuned.encoder)]
        if include_frozen:
            encoders.insert(0, ("frozen", TextEncoder.load(base.encoder)))
        for prefix, encoder in encoders:
            variants.append(
                (f"{prefix} emb", dataclasses.replace(frozen_cfg, features="embedding"), encoder)
            )
            variants.append(
                (
                    f"{prefix} emb+char",
                    dataclasses.replace(frozen_cfg, ngram_weight_grid=char_grid),
                    encoder,
                )
            )
        if include_frozen:
            variants.append(("frozen emb+char+word", frozen_cfg, encoders[0][1]))
        if resolve_multilingual(base.multilingual, [e.text for e in train if e.intent != OOS]):
            # What the multilingual block adds: the frozen rows again without it.
            for label, cfg, encoder in list(variants):
                if label.startswith("frozen"):
                    variants.append(
                        (f"{label} -ml", dataclasses.replace(cfg, multilingual=""), encoder)
                    )
        test = load_examples(test_path)
        name = _name(train_path, test_path)
        reports["tuned emb+char+word"] = evaluate(tuned, test, name=name, progress=prog)
        for label, cfg, encoder in variants:
            t0 = time.perf_counter()
            clf = fit_intent_model(train, cfg, valid=valid, progress=prog, encoder=encoder)
            rep = evaluate(clf, test, name=name, progress=prog)
            rep.train_seconds = round(time.perf_counter() - t0, 1)
            if label.startswith("tuned"):
                # head only; the encoder's fine-tuning is counted in the combined row
                rep.extra["note"] = "head trained on the shared fine-tuned encoder"
            reports[label] = rep
    order = [
        "char only",
        "frozen emb -ml",
        "frozen emb",
        "frozen emb+char -ml",
        "frozen emb+char",
        "frozen emb+char+word -ml",
        "frozen emb+char+word",
        "tuned emb",
        "tuned emb+char",
        "tuned emb+char+word",
    ]
    return {k: reports[k] for k in order if k in reports}


def _name(train_path: str | Path, test_path: str | Path) -> str:
    tp, sp = Path(train_path), Path(test_path)
    return f"{tp.parent.name}/{tp.stem} → {sp.stem}"


def _pct(x: float | None) -> str:
    return "—" if x is None else f"{100 * x:.2f}"


def report_table(reports: dict[str, EvalReport], *, title: str = "Intent evaluation") -> Table:
    """A ``rich`` table of one or more reports (one row each; percentages)."""
    from rich.table import Table

    # Fits an 80-column terminal: short headers, no outer padding; the training time
    # and the threshold's origin are printed under the table by the CLI.
    table = Table(
        title=title,
        pad_edge=False,
        caption="acc/in-sc(ope)/closed(-set)/macro-F1 in %; OOS precision/recall as fractions",
    )
    table.add_column("run", overflow="fold", min_width=11, max_width=20)
    for col in ("acc", "in-sc", "closed", "F1", "oosP", "oosR", "thr", "cls/s"):
        table.add_column(col, justify="right", no_wrap=True)
    for label, r in reports.items():
        table.add_row(
            label,
            _pct(r.accuracy),
            _pct(r.in_scope_accuracy),
            _pct(r.closed_set_accuracy),
            _pct(r.macro_f1),
            "—" if r.oos_precision is None else f"{r.oos_precision:.3f}",
            "—" if r.oos_recall is None else f"{r.oos_recall:.3f}",
            f"{r.threshold:.4g}",
            f"{r.classifications_per_second:.0f}",
        )
    return table
