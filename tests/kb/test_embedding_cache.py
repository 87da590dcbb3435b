"""The on-disk embedding cache: a second worker over an empty Qdrant embeds nothing it
was given before, a changed document is embedded again, a damaged entry is replaced."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from clawdesk.kb.embedding_cache import EmbeddingCache, embedding_key
from clawdesk.kb.embeddings import shared_embedder
from clawdesk.kb.index import KnowledgeBase, open_qdrant


class CountingEncoder:
    """The real encoder, counting the texts it is asked to embed."""

    def __init__(self) -> None:
        self.inner = shared_embedder("")
        self.version = self.inner.version
        self.dimension = self.inner.dimension
        self.texts = 0

    def encode(self, texts: list[str]) -> np.ndarray:
        self.texts += len(texts)
        return self.inner.encode(texts)

    def __getattr__(self, name: str) -> object:
        return getattr(self.inner, name)


@pytest.fixture()
def kb_dir(tmp_path: Path) -> Path:
    src = tmp_path / "kb"
    src.mkdir()
    (src / "shipping.md").write_text("# Shipping\n## Delivery time\nParcels arrive in 5 days.\n")
    (src / "returns.md").write_text("# Returns\n## Window\nReturn within 30 days.\n")
    return src


def _search(kb: KnowledgeBase, encoder: CountingEncoder, query: str) -> list[str]:
    return [h.text for h in kb.search("t1", query, encoder.inner.encode([query])[0].tolist(), 2)]


def test_a_fresh_qdrant_is_filled_from_the_cache(tmp_path: Path, kb_dir: Path) -> None:
    cache = EmbeddingCache(tmp_path / "cache")
    first_encoder = CountingEncoder()
    first = KnowledgeBase(open_qdrant("", tmp_path / "q1"), first_encoder, cache)
    first.sync("t1", [kb_dir])
    assert first_encoder.texts > 0

    second_encoder = CountingEncoder()
    second = KnowledgeBase(open_qdrant("", tmp_path / "q2"), second_encoder, cache)
    report = second.sync("t1", [kb_dir])
    assert report.added == 2 and second_encoder.texts == 0, "nothing embedded again"
    query = "how long until my parcel arrives"
    assert _search(second, second_encoder, query) == _search(first, first_encoder, query)

    (kb_dir / "shipping.md").write_text("# Shipping\n## Delivery time\nParcels take 9 days.\n")
    third_encoder = CountingEncoder()
    third = KnowledgeBase(open_qdrant("", tmp_path / "q3"), third_encoder, cache)
    third.sync("t1", [kb_dir])
    assert third_encoder.texts > 0, "the changed document is embedded"
    assert _search(third, third_encoder, query)[0] == "Parcels take 9 days."


def test_a_damaged_entry_is_a_miss_and_the_key_follows_the_model(tmp_path: Path) -> None:
    cache = EmbeddingCache(tmp_path / "cache")
    key = embedding_key("model-a", ["Q"], ["P"])
    assert key != embedding_key("model-b", ["Q"], ["P"])
    assert key != embedding_key("model-a", ["Q", "P"], [])
    cache.put(key, np.ones((1, 3)), np.zeros((1, 3)))
    got = cache.get(key)
    assert got is not None and got[0].tolist() == [[1.0, 1.0, 1.0]]
    next((tmp_path / "cache").rglob("*.npz")).write_bytes(b"not a numpy file")
    assert cache.get(key) is None
    assert cache.get(embedding_key("model-a", ["other"], [])) is None
