"""Evaluation figures and the CLI, on tiny files with the char-only classifier (fast)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from click.testing import Result
from typer.testing import CliRunner

from clawdesk.cli.eval import app
from clawdesk.nlu.config import ClassifierConfig
from clawdesk.nlu.labels import OOS
from clawdesk.nlu.training.evaluate import evaluate, run_intent_eval
from clawdesk.nlu.training.examples import IntentExample
from clawdesk.nlu.training.fit import fit_intent_model


def _write(path: Path, examples: list[IntentExample]) -> Path:
    path.write_text(
        "".join(
            json.dumps({"text": e.text, "intent": e.intent}, ensure_ascii=False) + "\n"
            for e in examples
        ),
        encoding="utf-8",
    )
    return path


def test_metrics_match_hand_count(tiny_train) -> None:
    clf = fit_intent_model(tiny_train, ClassifierConfig(features="char", threshold=0.0))
    test = [
        IntentExample(text="我要退款", intent="refund"),
        IntentExample(text="where is my order", intent="order_status"),
        IntentExample(text="讲个笑话", intent=OOS),
    ]
    preds = [p.intent for p in clf.predict([e.text for e in test])]
    rep = evaluate(clf, test)
    gold = [e.intent for e in test]
    assert rep.n_test == 3 and rep.n_oos == 1 and rep.n_in_scope == 2
    assert rep.accuracy == pytest.approx(
        np.mean([p == g for p, g in zip(preds, gold, strict=True)])
    )
    # threshold 0 and no oos class: nothing is rejected, so oos recall is 0
    assert OOS not in preds
    assert rep.oos_recall == 0.0 and rep.oos_precision == 0.0
    assert rep.in_scope_accuracy == pytest.approx(
        np.mean([p == g for p, g in zip(preds[:2], gold[:2], strict=True)])
    )
    assert rep.classifications_per_second > 0

    closed = rep.closed_set_accuracy
    assert closed == rep.in_scope_accuracy  # nothing rejected: the two agree

    clf.threshold = 1.01  # reject everything
    rep = evaluate(clf, test)
    assert rep.oos_recall == 1.0
    assert rep.oos_precision == pytest.approx(1 / 3)
    assert rep.in_scope_accuracy == 0.0
    assert rep.closed_set_accuracy == closed  # the threshold does not touch it


def test_no_oos_rows_gives_none(tiny_train) -> None:
    clf = fit_intent_model(tiny_train, ClassifierConfig(features="char", threshold=0.0))
    rep = evaluate(clf, [IntentExample(text="我要退款", intent="refund")])
    assert rep.oos_precision is None and rep.oos_recall is None


def _intents(train: Path, test: Path, valid: Path, out: Path, *options: str) -> Result:
    """`clawdesk eval intents` on these files, figures to ``out``."""
    # a wide terminal so that the table's headers are not wrapped
    return CliRunner(env={"COLUMNS": "200"}).invoke(
        app,
        [
            "intents",
            "--train", str(train),
            "--test", str(test),
            "--valid", str(valid),
            "--no-progress",
            "--json", str(out),
            *options,
        ],
    )  # fmt: skip


def test_run_intent_eval_and_cli(tmp_path: Path, tiny_train, tiny_valid) -> None:
    train = _write(tmp_path / "train.jsonl", tiny_train)
    valid = _write(tmp_path / "valid.jsonl", tiny_valid)
    test = _write(
        tmp_path / "test.jsonl",
        [
            IntentExample(text="退款", intent="refund"),
            IntentExample(text="track my order", intent="order_status"),
            IntentExample(text="what's the weather like", intent=OOS),
        ],
    )
    cfg = ClassifierConfig(features="char")
    rep = run_intent_eval(train, test, valid, config=cfg, progress=False)
    assert rep.extra["threshold_from"] == "valid"
    assert rep.n_test == 3

    out = tmp_path / "r.json"
    result = _intents(train, test, valid, out, "--features", "char", "--min-oos-recall", "0.5")
    assert result.exit_code == 0, result.output
    assert "in-sc" in result.output and "oosR" in result.output and "closed" in result.output
    data = json.loads(out.read_text())
    assert next(iter(data.values()))["n_test"] == 3
    # 3 validation oos rows cannot show recall 0.5 with 95 % confidence: the threshold
    # rejects all of them, so it is above 0.
    assert next(iter(data.values()))["threshold"] > 0
    # ... and the report shows what that threshold does on valid beside the test figures
    at = next(iter(data.values()))["extra"]["valid_at_threshold"]
    assert at["oos_recall"] == 1.0 and at["n_oos"] == 3
    assert "on valid at this threshold" in result.output


def test_cli_refuses_an_unknown_packaged_encoder(tmp_path: Path, tiny_train) -> None:
    train = _write(tmp_path / "t.jsonl", tiny_train)
    result = CliRunner().invoke(
        app,
        ["intents", "--train", str(train), "--test", str(train), "--encoder", "packaged:nope"],
    )
    assert result.exit_code == 2
    assert "unknown packaged model" in result.output


def test_cli_rejects_bad_features(tmp_path: Path, tiny_train) -> None:
    train = _write(tmp_path / "t.jsonl", tiny_train)
    result = CliRunner().invoke(
        app, ["intents", "--train", str(train), "--test", str(train), "--features", "nope"]
    )
    assert result.exit_code != 0


@pytest.mark.parametrize("fusion", [True, False])
def test_cli_pools_training_oos_rows_and_names_the_oos_score(
    tmp_path: Path, tiny_train, tiny_valid, fusion: bool
) -> None:
    oos_rows = ["tell me a joke", "sing me a song", "what is the capital of France"]
    train = _write(
        tmp_path / "train.jsonl",
        [*tiny_train, *(IntentExample(text=t, intent=OOS) for t in oos_rows)],
    )
    valid = _write(tmp_path / "valid.jsonl", tiny_valid)
    out = tmp_path / "r.json"
    flag = "--knn-fusion" if fusion else "--no-knn-fusion"
    result = _intents(train, valid, valid, out, "--no-finetune", flag)
    assert result.exit_code == 0, result.output
    extra = next(iter(json.loads(out.read_text()).values()))["extra"]
    assert extra["threshold_from"] == "valid + held-out train oos"
    assert extra["oos_score"] == ("msp+nearest-cosine" if fusion else "msp")
    assert extra["valid_at_threshold"]["n_heldout_train_oos"] == len(oos_rows)
    assert "held-out train oos recall" in result.output
    assert extra["oos_score"] in result.output


def test_cli_passes_finetune_settings(tmp_path: Path, tiny_train, tiny_valid) -> None:
    train = _write(tmp_path / "train.jsonl", tiny_train)
    valid = _write(tmp_path / "valid.jsonl", tiny_valid)
    out = tmp_path / "r.json"
    result = _intents(
        train, valid, valid, out, "--features", "embedding",
        "--finetune-set", "max_steps=2", "--finetune-set", "lr=1e-5",
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    extra = next(iter(json.loads(out.read_text()).values()))["extra"]
    assert extra["finetune"]["steps"] == 2


@pytest.mark.parametrize(
    ("options", "message"),
    [
        (["--finetune-set", "lr=fast"], "valid number"),
        (["--finetune-set", "nope=1"], "unknown fine-tuning setting"),
        (["--no-finetune", "--finetune-set", "lr=1e-4"], "needs fine-tuning"),
        (["--features", "char", "--finetune-set", "lr=1e-4"], "needs fine-tuning"),
    ],
)
def test_cli_refuses_bad_finetune_settings(
    tmp_path: Path, tiny_train, options: list[str], message: str
) -> None:
    train = _write(tmp_path / "t.jsonl", tiny_train)
    out = tmp_path / "r.json"
    result = _intents(train, train, train, out, *options)
    assert result.exit_code == 2
    assert message in result.output
    assert not out.exists()
