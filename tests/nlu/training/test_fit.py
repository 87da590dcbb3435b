"""fit_intent_model: n-gram weight search, thresholds with and without valid, bad input."""

from __future__ import annotations

import pytest

from clawdesk.nlu.config import ClassifierConfig
from clawdesk.nlu.labels import OOS
from clawdesk.nlu.training.examples import IntentExample
from clawdesk.nlu.training.fit import fit_intent_model


def test_weight_selection_with_required_oos_recall(tiny_train, tiny_valid) -> None:
    # Without an encoder fine-tune (fast): the grid is searched, and the threshold must
    # reject enough validation oos rows for the Wilson bound; with 3 oos rows no
    # threshold can show 0.5 with 95 % confidence, so every oos row is rejected.
    cfg = ClassifierConfig(finetune=False, min_oos_recall=0.5)
    clf = fit_intent_model(tiny_train, cfg, valid=tiny_valid)
    assert len(clf.info["ngram_weight_selection"]["valid_objective"]) == len(cfg.ngram_weight_grid)
    oos_texts = [e.text for e in tiny_valid if e.intent == OOS]
    assert {p.intent for p in clf.predict(oos_texts)} == {OOS}


def test_threshold_by_cross_validation_without_valid(tiny_train) -> None:
    cfg = ClassifierConfig(features="char")
    clf = fit_intent_model(tiny_train, cfg)
    assert clf.info["threshold_from"].endswith("cross-validation on train")
    assert 0.0 < clf.threshold < 1.0


def test_fit_rejects_single_intent() -> None:
    with pytest.raises(ValueError):
        fit_intent_model(
            [IntentExample(text="a", intent="x"), IntentExample(text="b", intent="x")],
            ClassifierConfig(features="char"),
        )


def test_example_validation() -> None:
    with pytest.raises(ValueError):
        IntentExample(text="  ", intent="x")
