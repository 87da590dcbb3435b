"""Temperature scaling of the reported confidences, and the calibration error it is
judged by."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from clawdesk.nlu.confidence import temper
from clawdesk.nlu.config import ClassifierConfig
from clawdesk.nlu.model import IntentClassifier
from clawdesk.nlu.training.calibration import expected_calibration_error, fit_temperature
from clawdesk.nlu.training.fit import fit_intent_model


def _softmax(z: np.ndarray) -> np.ndarray:
    z = np.exp(z - z.max(axis=1, keepdims=True))
    return z / z.sum(axis=1, keepdims=True)


def test_temper_rescales_the_logits_and_keeps_each_rows_ranking() -> None:
    logits = np.array([[2.0, 1.0, -1.0], [0.1, 0.3, 0.2]])
    probs = _softmax(logits)
    assert temper(probs, 1.0) is probs
    np.testing.assert_allclose(temper(probs, 2.0), _softmax(logits / 2.0), atol=1e-9)
    np.testing.assert_allclose(temper(probs, 0.5), _softmax(logits / 0.5), atol=1e-9)
    for t in (0.3, 3.0):
        np.testing.assert_array_equal(temper(probs, t).argmax(axis=1), probs.argmax(axis=1))
    assert temper(probs, 0.5).max(axis=1).min() > probs.max(axis=1).min()  # sharper


@pytest.mark.parametrize("true_t", [0.5, 2.5])
def test_fit_temperature_finds_the_temperature_the_labels_were_drawn_at(true_t: float) -> None:
    rng = np.random.default_rng(0)
    logits = rng.normal(scale=3.0, size=(4000, 10))
    drawn = _softmax(logits / true_t)
    gold = np.array([rng.choice(10, p=row) for row in drawn])
    # The head reports softmax(logits); the labels follow softmax(logits / true_t).
    assert fit_temperature(_softmax(logits), gold) == pytest.approx(true_t, rel=0.1)
    assert fit_temperature(_softmax(logits), gold[:0]) == 1.0


def test_expected_calibration_error() -> None:
    # Two bins: 0.9-confident rows right 3 of 4 times, 0.6-confident rows always right.
    confidence = np.array([0.9, 0.9, 0.9, 0.9, 0.6, 0.6])
    correct = np.array([1, 1, 1, 0, 1, 1])
    want = 4 / 6 * abs(0.9 - 0.75) + 2 / 6 * abs(0.6 - 1.0)
    assert expected_calibration_error(confidence, correct) == pytest.approx(want)
    rng = np.random.default_rng(1)
    p = rng.uniform(0.2, 1.0, 20000)
    assert expected_calibration_error(p, rng.uniform(size=p.size) < p) < 0.02  # calibrated
    assert expected_calibration_error(np.ones(4), np.zeros(4)) == 1.0
    assert np.isnan(expected_calibration_error(np.array([]), np.array([])))


def test_classifier_tempers_what_it_reports_not_what_it_decides(
    tiny_train, tiny_valid, tmp_path: Path
) -> None:
    cfg = ClassifierConfig(features="char")
    clf = fit_intent_model(tiny_train, cfg, valid=tiny_valid)
    assert clf.info["temperature_from"] == "valid"
    assert clf.temperature == pytest.approx(clf.info["temperature"], abs=1e-4)
    assert clf.temperature != 1.0
    texts = ["我要退款", "where is my parcel", "ship it somewhere else"]
    raw = clf.predict_proba(texts)
    preds = clf.predict(texts)
    tempered = temper(raw, clf.temperature)
    for p, row in zip(preds, tempered, strict=True):
        assert p.confidence == pytest.approx(row.max())
        assert p.top[0][0] == clf.classes[int(row.argmax())]
    # the oos decision still reads the untempered probability
    np.testing.assert_allclose(clf.in_scope_scores(texts), raw.max(axis=1), atol=1e-6)

    d = clf.save(tmp_path / "m")
    assert IntentClassifier.load(d).temperature == clf.temperature
    meta = json.loads((d / "classifier.json").read_text())
    del meta["temperature"]  # a model saved before tempering reports the head as it is
    (d / "classifier.json").write_text(json.dumps(meta))
    old = IntentClassifier.load(d)
    assert old.temperature == 1.0
    assert [p.confidence for p in old.predict(texts)] == pytest.approx(raw.max(axis=1))

    untempered = ClassifierConfig(features="char", calibrate_confidence=False)
    assert fit_intent_model(tiny_train, untempered, valid=tiny_valid).temperature == 1.0


def test_without_valid_the_temperature_comes_from_cross_validation(tiny_train) -> None:
    clf = fit_intent_model(tiny_train, ClassifierConfig(features="char"))
    assert clf.info["temperature_from"] == "3-fold cross-validation on train"
    # A char-n-gram head on eight examples per intent is far from sure of new messages;
    # its held-out fold predictions are right more often than their probability says.
    assert clf.temperature < 1.0
