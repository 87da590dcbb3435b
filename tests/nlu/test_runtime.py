"""The nlu stage's per-tenant models: the confidence floor follows the model's kind."""

from __future__ import annotations

import json
import logging
from pathlib import Path

import pytest

from clawdesk.nlu.model import ClassifierConfig, IntentClassifier
from clawdesk.nlu.store import save_model
from clawdesk.nlu_runtime import LEGACY_MIN_CONFIDENCE, TenantNlu


def test_a_model_stored_before_calibration_keeps_its_old_floor(
    tiny_train, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    clf = IntentClassifier(ClassifierConfig(features="char")).fit(tiny_train)
    version = save_model(tmp_path, "acme", clf)
    nlu = TenantNlu(tmp_path, "", min_confidence=0.9)
    intents = tmp_path / "unused.yaml"  # a tenant with a stored model is not trained again
    nlu.ensure("acme", intents)
    assert nlu.min_confidence_for("acme") == 0.9  # calibrated: the configured floor

    # The same model as an older release stored it: no temperature, raw probabilities.
    meta_file = tmp_path / "acme" / version / "classifier.json"
    meta = json.loads(meta_file.read_text())
    del meta["temperature"]
    for key in ("temperature", "temperature_from"):
        meta["info"].pop(key, None)
    meta_file.write_text(json.dumps(meta))
    with caplog.at_level(logging.WARNING):
        nlu.ensure("acme", intents)
    assert nlu.min_confidence_for("acme") == LEGACY_MIN_CONFIDENCE
    assert "uncalibrated confidences" in caplog.text
