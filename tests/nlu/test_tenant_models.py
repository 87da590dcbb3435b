"""The nlu stage's per-tenant models: the confidence floor follows the model's kind."""

from __future__ import annotations

import json
import logging
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from clawdesk.nlu import tenant_models
from clawdesk.nlu.config import ClassifierConfig
from clawdesk.nlu.tenant_models import LEGACY_MIN_CONFIDENCE, TenantNlu
from clawdesk.nlu.training.fit import fit_intent_model
from clawdesk.nlu.versions import list_versions, save_model


def test_a_model_stored_before_calibration_keeps_its_old_floor(
    tiny_train, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    clf = fit_intent_model(tiny_train, ClassifierConfig(features="char"))
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


def test_each_tenant_is_classified_by_its_own_model(tiny_train, tmp_path: Path) -> None:
    # Acme knows refunds and orders; Globex was trained on address changes and orders only.
    acme = [e for e in tiny_train if e.intent != "change_address"]
    globex = [e for e in tiny_train if e.intent != "refund"]
    save_model(tmp_path, "acme", fit_intent_model(acme, ClassifierConfig(features="char")))
    save_model(tmp_path, "globex", fit_intent_model(globex, ClassifierConfig(features="char")))
    nlu = TenantNlu(tmp_path, "", min_confidence=0.9)
    for tenant in ("acme", "globex"):
        nlu.ensure(tenant, tmp_path / "unused.yaml")

    _, [for_acme] = nlu.predict("acme", ["I want a refund"])
    _, [for_globex] = nlu.predict("globex", ["I want a refund"])

    assert for_acme.intent == "refund"
    assert for_globex.intent != "refund"  # Globex's model has no such intent
    with pytest.raises(KeyError):
        nlu.predict("initech", ["I want a refund"])  # no model loaded: no one else's


def test_workers_started_together_train_the_first_model_once(
    tiny_train, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    trained = []
    model = fit_intent_model(tiny_train, ClassifierConfig(features="char"))

    def slow_training(intents_file: Path, encoder: str):
        trained.append(intents_file)
        time.sleep(0.5)  # long enough for the other worker to arrive meanwhile
        return model

    monkeypatch.setattr(tenant_models, "train_cold_start", slow_training)
    workers = [TenantNlu(tmp_path, "", min_confidence=0.9) for _ in range(3)]
    with ThreadPoolExecutor(len(workers)) as pool:
        versions = list(pool.map(lambda w: w.ensure("acme", tmp_path / "intents.yaml"), workers))
    assert len(trained) == 1, "one training for the shared models directory"
    assert versions == ["v0001"] * 3
    assert list_versions(tmp_path, "acme") == ["v0001"]
