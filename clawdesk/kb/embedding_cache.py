"""Embeddings of knowledge-base documents kept on disk, shared by every worker that
mounts the same models directory.

A worker with an empty Qdrant (a fresh replica, a pod with an `emptyDir`, each test's
private data dir) would otherwise embed the whole knowledge base again before it can
answer: on a 2-core machine that is the larger part of its start-up. The cache is keyed
by the encoder's version and the exact texts embedded, so a changed document, chunker or
model never gets stale vectors.
"""

from __future__ import annotations

import hashlib
import logging
import os
import tempfile
from pathlib import Path

import numpy as np

log = logging.getLogger(__name__)


def embedding_key(encoder_version: str, questions: list[str], passages: list[str]) -> str:
    """The cache key of one document's vectors: what was embedded, and by which model."""
    digest = hashlib.sha256(encoder_version.encode())
    for text in (*questions, "\x1e", *passages):
        digest.update(b"\x1f" + text.encode())
    return digest.hexdigest()


class EmbeddingCache:
    """Question and passage vectors per document, one `.npz` file each (written whole
    and renamed into place, so a reader never sees half a file)."""

    def __init__(self, root: Path) -> None:
        self.root = root

    def _path(self, key: str) -> Path:
        return self.root / key[:2] / f"{key}.npz"

    def get(self, key: str) -> tuple[np.ndarray, np.ndarray] | None:
        """The stored (questions, passages) vectors, or None (absent or unreadable)."""
        path = self._path(key)
        try:
            with np.load(path) as data:
                return data["questions"], data["passages"]
        except FileNotFoundError:
            return None
        except (OSError, ValueError, KeyError) as err:  # a damaged file: embed again
            log.warning(
                "unreadable embedding cache entry", extra={"path": str(path), "error": repr(err)}
            )
            return None

    def put(self, key: str, questions: np.ndarray, passages: np.ndarray) -> None:
        """Store the vectors; a cache that cannot be written only costs time later."""
        path = self._path(key)
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            fd, tmp = tempfile.mkstemp(dir=path.parent, suffix=".tmp")
            with os.fdopen(fd, "wb") as f:
                np.savez(f, questions=questions, passages=passages)
            os.replace(tmp, path)
        except OSError as err:
            log.warning(
                "embedding cache not written", extra={"path": str(path), "error": repr(err)}
            )


def _where(path: Path, err: Exception) -> dict[str, str]:
    return {"path": str(path), "error": repr(err)}
