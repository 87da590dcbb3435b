"""Models shipped inside packages: resolving names, unpacking the split mpnet archive."""

from __future__ import annotations

import zipfile
from importlib import metadata
from pathlib import Path

import numpy as np
import pytest

from clawdesk.kb import packaged_models as pm
from clawdesk.nlu.config import ClassifierConfig
from clawdesk.nlu.encoder import TextEncoder
from clawdesk.nlu.model import IntentClassifier
from clawdesk.nlu.training.fit import fit_intent_model


def test_default_and_minilm_name_resolve_to_the_packaged_directory() -> None:
    path = Path(pm.resolve_model(""))
    assert (path / "config.json").is_file()
    assert pm.resolve_model(pm.MINILM) == str(path)
    assert pm.resolve_model(None) == str(path)


def test_other_names_pass_through(tmp_path: Path) -> None:
    assert pm.resolve_model(str(tmp_path)) == str(tmp_path)
    assert pm.resolve_model("sentence-transformers/foo") == "sentence-transformers/foo"


def test_unknown_packaged_name_is_a_clear_error() -> None:
    with pytest.raises(pm.PackagedModelError, match="unknown packaged model 'packaged:nope'"):
        pm.resolve_model("packaged:nope")


def test_mpnet_unpacks_once_and_loads(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    cache = tmp_path / "cache"
    path = pm.mpnet_path(cache)
    assert path == cache / "all-mpnet-base-v2"
    assert (path / ".complete").is_file() and (path / "model.safetensors").is_file()
    assert not list(path.rglob("desktop.ini"))
    assert [p.name for p in cache.iterdir()] == ["all-mpnet-base-v2"]  # no work dirs left
    # Found again without reading the parts: a second unpack would have to look them up.
    monkeypatch.setattr(pm, "_mpnet_parts", lambda: pytest.fail("unpacked again"))
    assert pm.mpnet_path(cache) == path

    enc = TextEncoder.load(path)
    vecs = enc.encode(["where is my parcel", "has my order shipped", "I want a refund"])
    assert vecs.shape == (3, 768)
    np.testing.assert_allclose(np.linalg.norm(vecs, axis=1), 1.0, atol=1e-5)
    assert vecs[0] @ vecs[1] > vecs[0] @ vecs[2]


def _fake_parts(tmp_path: Path, weights: bytes) -> list[Path]:
    """A zip shaped like the real archive, split into five parts."""
    archive = tmp_path / "fake.zip"
    with zipfile.ZipFile(archive, "w") as zf:
        zf.writestr("all-mpnet-base-v2/config.json", "{}")
        zf.writestr("all-mpnet-base-v2/model.safetensors", weights)
    data = archive.read_bytes()
    size = -(-len(data) // 5)
    parts = []
    for i in range(5):
        part = tmp_path / f"fake.zip.{i + 1:03d}"
        part.write_bytes(data[i * size : (i + 1) * size])
        parts.append(part)
    return parts


def test_damaged_weights_are_refused_and_leave_nothing(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    parts = _fake_parts(tmp_path, b"not the real weights")
    monkeypatch.setattr(pm, "_mpnet_parts", lambda: parts)
    cache = tmp_path / "cache"
    with pytest.raises(pm.PackagedModelError, match="not the expected file"):
        pm.mpnet_path(cache)
    assert list(cache.iterdir()) == []


def test_parts_that_are_not_a_zip_are_refused(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    parts = []
    for i in range(5):
        part = tmp_path / f"junk.{i}"
        part.write_bytes(b"junk" * 100)
        parts.append(part)
    monkeypatch.setattr(pm, "_mpnet_parts", lambda: parts)
    with pytest.raises(pm.PackagedModelError, match="not a zip"):
        pm.mpnet_path(tmp_path / "cache")


def test_missing_packages_name_the_extra(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    def missing(name: str) -> metadata.Distribution:
        raise metadata.PackageNotFoundError(name)

    monkeypatch.setattr(pm.metadata, "distribution", missing)
    with pytest.raises(pm.PackagedModelError, match=r"clawdesk\[mpnet\]"):
        pm.mpnet_path(tmp_path / "cache")


def test_saved_classifier_refers_to_a_frozen_packaged_encoder(tiny_train, tmp_path: Path) -> None:
    # A frozen packaged encoder is found again by name: no 90 MB copy per model version.
    clf = fit_intent_model(tiny_train, ClassifierConfig(finetune=False, features="embedding"))
    clf.save(tmp_path / "m")
    assert not (tmp_path / "m" / "encoder").exists()
    loaded = IntentClassifier.load(tmp_path / "m")
    assert loaded.encoder is not None and loaded.encoder.source == pm.MINILM
    texts = ["where is my order", "我要退款"]
    np.testing.assert_allclose(clf.predict_proba(texts), loaded.predict_proba(texts), atol=1e-5)
