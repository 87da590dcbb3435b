"""Models saved before the serving/training split load and predict as they did.

``fixtures/saved_398b064`` holds two tiny models written by ``clawdesk.nlu.model`` at
commit 398b064 (one char-n-gram head, one embedding + char head with the
nearest-neighbour fusion), with that code's predictions of eight queries beside them.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from clawdesk.nlu.model import IntentClassifier
from clawdesk.nlu.versions import load_model, save_model

SAVED = Path(__file__).parent / "fixtures" / "saved_398b064"


def _expected(name: str) -> tuple[list[str], list[dict]]:
    data = json.loads((SAVED / name / "expected.json").read_text(encoding="utf-8"))
    return data["queries"], data["predictions"]


def _assert_predicts_as_saved(clf: IntentClassifier, name: str) -> None:
    queries, expected = _expected(name)
    got = clf.predict(queries)
    assert [p.intent for p in got] == [e["intent"] for e in expected]
    for p, e in zip(got, expected, strict=True):
        assert p.confidence == pytest.approx(e["confidence"], abs=1e-6)
        assert [i for i, _ in p.top] == [i for i, _ in e["top"]]
        assert [q for _, q in p.top] == pytest.approx([q for _, q in e["top"]], abs=1e-6)


@pytest.mark.parametrize("name", ["char", "combined"])
def test_a_model_saved_before_the_split_predicts_as_it_did(name: str) -> None:
    clf = IntentClassifier.load(SAVED / name)
    if name == "combined":
        assert clf.fusion is not None and clf.knn_bank is not None  # the fused oos score
    _assert_predicts_as_saved(clf, name)


def test_the_store_loads_it_and_saving_again_keeps_the_predictions(tmp_path: Path) -> None:
    # Copy the old model into a tenant's store the way `clawdesk nlu train` wrote it.
    clf = IntentClassifier.load(SAVED / "combined")
    version = save_model(tmp_path, "acme", clf)
    _assert_predicts_as_saved(load_model(tmp_path, "acme", version), "combined")
