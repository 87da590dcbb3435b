"""N-gram TF-IDF feature blocks and how the blocks are stacked for the linear head.

* :class:`CharNgrams` – TF-IDF over character n-grams.  It needs no tokenizer or
  language model, so it works the same for Chinese (no spaces between words) and English,
  and it catches surface cues (product names, codes, typos) that an English-centric
  embedding model blurs.
* :class:`WordNgrams` – TF-IDF over word uni- and bigrams (which words go together).

:func:`combine` stacks them with the sentence embeddings into one sparse matrix.  Which
weights the blocks get is a training decision (:mod:`clawdesk.nlu.training.ngram_search`).
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any, Self

import numpy as np
from scipy import sparse
from sklearn.feature_extraction.text import TfidfVectorizer

__all__ = ["CharNgrams", "WordNgrams", "combine"]


class _TfidfNgrams:
    """TF-IDF over n-grams, saved as JSON + ``.npy`` (no pickle)."""

    analyzer = "char_wb"
    file_prefix = "char_ngrams"
    token_pattern: str | None = None
    default_range: tuple[int, int] = (2, 4)

    def __init__(
        self,
        ngram_range: tuple[int, int] | None = None,
        *,
        min_df: int = 1,
        max_features: int | None = 200_000,
        sublinear_tf: bool = True,
    ) -> None:
        self.ngram_range = ngram_range or self.default_range
        self.min_df = min_df
        self.max_features = max_features
        self.sublinear_tf = sublinear_tf
        self.vectorizer = self._new_vectorizer()

    def _new_vectorizer(self, vocabulary: dict[str, int] | None = None) -> TfidfVectorizer:
        extra: dict[str, Any] = {}
        if self.token_pattern is not None:
            extra["token_pattern"] = self.token_pattern
        return TfidfVectorizer(
            analyzer=self.analyzer,
            ngram_range=self.ngram_range,
            lowercase=True,
            min_df=self.min_df if vocabulary is None else 1,
            max_features=self.max_features if vocabulary is None else None,
            sublinear_tf=self.sublinear_tf,
            dtype=np.float32,
            vocabulary=vocabulary,
            **extra,
        )

    def fit(self, texts: Sequence[str]) -> Self:
        """Learn the vocabulary and IDF weights from ``texts``."""
        self.vectorizer.fit(list(texts))
        return self

    def transform(self, texts: Sequence[str]) -> sparse.csr_matrix:
        """L2-normalised TF-IDF rows for ``texts``."""
        return sparse.csr_matrix(self.vectorizer.transform(list(texts)))

    @property
    def n_features(self) -> int:
        """Size of the learnt vocabulary."""
        return len(self.vectorizer.vocabulary_)

    def save(self, directory: str | Path) -> None:
        """Save as JSON + ``.npy`` (no pickle: safe to load and stable across versions)."""
        d = Path(directory)
        d.mkdir(parents=True, exist_ok=True)
        vocab = {k: int(v) for k, v in self.vectorizer.vocabulary_.items()}
        meta = {
            "ngram_range": list(self.ngram_range),
            "min_df": self.min_df,
            "max_features": self.max_features,
            "sublinear_tf": self.sublinear_tf,
        }
        (d / f"{self.file_prefix}.json").write_text(
            json.dumps({"params": meta, "vocabulary": vocab}, ensure_ascii=False),
            encoding="utf-8",
        )
        np.save(d / f"{self.file_prefix}_idf.npy", self.vectorizer.idf_.astype(np.float32))

    @classmethod
    def load(cls, directory: str | Path) -> Self:
        """Load what :meth:`save` wrote."""
        d = Path(directory)
        data = json.loads((d / f"{cls.file_prefix}.json").read_text(encoding="utf-8"))
        params = data["params"]
        obj = cls(
            (int(params["ngram_range"][0]), int(params["ngram_range"][1])),
            min_df=params["min_df"],
            max_features=params["max_features"],
            sublinear_tf=params["sublinear_tf"],
        )
        obj.vectorizer = obj._new_vectorizer(vocabulary=data["vocabulary"])
        # With a fixed vocabulary, fitting on nothing is impossible; set the learnt IDF
        # directly (TfidfVectorizer exposes an idf_ setter for exactly this).
        obj.vectorizer.idf_ = np.load(d / f"{cls.file_prefix}_idf.npy")
        return obj


class CharNgrams(_TfidfNgrams):
    """Character n-gram TF-IDF (``char_wb``: n-grams do not cross spaces).

    For Chinese, which has no spaces, the whole run of ideographs is one "word", so the
    n-grams are character uni/bi/tri-grams – the usual strong baseline for Chinese text.
    """


class WordNgrams(_TfidfNgrams):
    """Word uni- and bigram TF-IDF.

    Char n-grams see spelling; word bigrams see which words go together ("top up" vs
    "top up failed"), which separates near-duplicate intents a little better (measured on
    the BANKING77 validation split).  One-letter words are kept.
    """

    analyzer = "word"
    file_prefix = "word_ngrams"
    token_pattern = r"(?u)\b\w+\b"
    default_range = (1, 2)


def combine(
    embeddings: np.ndarray | None,
    char_features: sparse.spmatrix | None,
    *,
    embedding_weight: float = 1.0,
    char_weight: float = 1.0,
    word_features: sparse.spmatrix | None = None,
    word_weight: float = 1.0,
) -> sparse.csr_matrix:
    """Stack weighted embedding, char- and word-n-gram blocks into one CSR matrix.

    Every block is unit-norm per row, so the weights set how much each view can move a
    linear head with a shared L2 penalty.  A block whose weight is 0 is left out.
    """
    blocks: list[sparse.spmatrix] = []
    if embeddings is not None and embedding_weight:
        blocks.append(sparse.csr_matrix(embeddings * np.float32(embedding_weight)))
    if char_features is not None and char_weight:
        blocks.append(sparse.csr_matrix(char_features) * np.float32(char_weight))
    if word_features is not None and word_weight:
        blocks.append(sparse.csr_matrix(word_features) * np.float32(word_weight))
    if not blocks:
        raise ValueError("no features selected")
    return sparse.csr_matrix(sparse.hstack(blocks, format="csr", dtype=np.float32))
