"""Versioned per-tenant model store."""

from __future__ import annotations

import threading
from pathlib import Path

import numpy as np
import pytest

from clawdesk.nlu import versions as store
from clawdesk.nlu.config import ClassifierConfig
from clawdesk.nlu.training.fit import fit_intent_model


class _FakeClassifier:
    """Stands in for IntentClassifier where only save() matters (no model to load)."""

    def __init__(self, tag: str) -> None:
        self.tag = tag

    def save(self, directory: Path) -> Path:
        Path(directory, "tag.txt").write_text(self.tag)
        return Path(directory)


def test_versions_increase_and_latest(tmp_path: Path) -> None:
    assert store.list_versions(tmp_path, "acme") == []
    assert store.latest_version(tmp_path, "acme") is None
    v1 = store.save_model(tmp_path, "acme", _FakeClassifier("a"))  # type: ignore[arg-type]
    v2 = store.save_model(tmp_path, "acme", _FakeClassifier("b"), metadata={"acc": 0.9})  # type: ignore[arg-type]
    assert (v1, v2) == ("v0001", "v0002")
    assert store.list_versions(tmp_path, "acme") == ["v0001", "v0002"]
    assert store.latest_version(tmp_path, "acme") == "v0002"
    assert (tmp_path / "acme" / "v0001" / "tag.txt").read_text() == "a"
    manifest = store.read_manifest(tmp_path, "acme")
    assert manifest["version"] == "v0002" and manifest["metadata"] == {"acc": 0.9}
    # tenants are independent
    assert store.save_model(tmp_path, "other", _FakeClassifier("c")) == "v0001"  # type: ignore[arg-type]
    # no temporary directories are left behind
    assert sorted(p.name for p in (tmp_path / "acme").iterdir()) == ["v0001", "v0002"]


def test_incomplete_versions_are_ignored(tmp_path: Path) -> None:
    store.save_model(tmp_path, "acme", _FakeClassifier("a"))  # type: ignore[arg-type]
    (tmp_path / "acme" / "v0007").mkdir()  # no manifest: not a complete version
    assert store.list_versions(tmp_path, "acme") == ["v0001"]
    # ...but its number is taken, so the next save does not reuse it
    assert store.save_model(tmp_path, "acme", _FakeClassifier("b")) == "v0008"  # type: ignore[arg-type]


def test_concurrent_saves_get_distinct_versions(tmp_path: Path) -> None:
    results: list[str] = []
    lock = threading.Lock()

    def save(i: int) -> None:
        v = store.save_model(tmp_path, "acme", _FakeClassifier(str(i)))  # type: ignore[arg-type]
        with lock:
            results.append(v)

    threads = [threading.Thread(target=save, args=(i,)) for i in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sorted(results) == [f"v{i:04d}" for i in range(1, 9)]
    tags = {(tmp_path / "acme" / v / "tag.txt").read_text() for v in results}
    assert tags == {str(i) for i in range(8)}


@pytest.mark.parametrize("tenant", ["", "../etc", "a/b", ".hidden", "x" * 65, "a b"])
def test_bad_tenant_ids(tmp_path: Path, tenant: str) -> None:
    with pytest.raises(ValueError):
        store.save_model(tmp_path, tenant, _FakeClassifier("a"))  # type: ignore[arg-type]


def test_missing_model(tmp_path: Path) -> None:
    with pytest.raises(store.ModelNotFoundError):
        store.load_model(tmp_path, "nobody")
    store.save_model(tmp_path, "acme", _FakeClassifier("a"))  # type: ignore[arg-type]
    with pytest.raises(store.ModelNotFoundError):
        store.load_model(tmp_path, "acme", "v0042")
    with pytest.raises(ValueError):
        store.load_model(tmp_path, "acme", "../v0001")


def test_real_classifier_round_trip(tmp_path: Path, tiny_train) -> None:
    clf = fit_intent_model(tiny_train, ClassifierConfig(features="char", threshold=0.2))
    v1 = store.save_model(tmp_path, "acme", clf)
    clf.threshold = 0.3
    v2 = store.save_model(tmp_path, "acme", clf)
    latest = store.load_model(tmp_path, "acme")
    first = store.load_model(tmp_path, "acme", v1)
    assert (latest.threshold, first.threshold) == (0.3, 0.2)
    assert v2 == "v0002"
    texts = ["我要退款", "where is my order"]
    np.testing.assert_allclose(latest.predict_proba(texts), clf.predict_proba(texts), atol=1e-6)


def _save_n(root: Path, n: int) -> list[str]:
    return [store.save_model(root, "acme", _FakeClassifier(str(i))) for i in range(n)]  # type: ignore[arg-type]


def test_prune_keeps_the_newest_and_the_pinned_version(tmp_path: Path) -> None:
    _save_n(tmp_path, 5)
    assert store.prune_plan(tmp_path, "acme", keep=2, pinned="v0002") == ["v0001", "v0003"]
    assert store.list_versions(tmp_path, "acme") == [f"v000{i}" for i in range(1, 6)]  # plan only
    assert store.version_bytes(tmp_path, "acme", "v0001") > 0
    plan = store.prune_plan(tmp_path, "acme", keep=2, pinned="v0002")
    assert store.remove_versions(tmp_path, "acme", plan) == ["v0001", "v0003"]
    assert store.list_versions(tmp_path, "acme") == ["v0002", "v0004", "v0005"]
    # nothing hidden is left behind, and numbers are not reused
    assert sorted(p.name for p in (tmp_path / "acme").iterdir()) == ["v0002", "v0004", "v0005"]
    assert store.save_model(tmp_path, "acme", _FakeClassifier("new")) == "v0006"  # type: ignore[arg-type]
    assert store.prune_plan(tmp_path, "acme", keep=10) == []


def test_prune_refuses_the_latest_and_bad_input(tmp_path: Path) -> None:
    _save_n(tmp_path, 2)
    with pytest.raises(ValueError, match="keep at least one"):
        store.prune_plan(tmp_path, "acme", keep=0)
    with pytest.raises(ValueError, match="latest"):
        store.remove_versions(tmp_path, "acme", ["v0002"])
    with pytest.raises(ValueError, match="invalid version"):
        store.remove_versions(tmp_path, "acme", ["../x"])
    assert store.remove_versions(tmp_path, "acme", ["v0001", "v0001"]) == ["v0001"]
    assert store.list_versions(tmp_path, "acme") == ["v0002"]
