"""A keyword index that works for Chinese (jieba word segmentation) and English."""

from __future__ import annotations

import logging
import re
import threading
from collections.abc import Sequence

import jieba
from rank_bm25 import BM25Okapi

jieba.setLogLevel(logging.WARNING)
_jieba_lock = threading.Lock()  # jieba builds its dictionary lazily, once

_WORD = re.compile(r"[0-9a-z]+|[\u4e00-\u9fff]+")
STOPWORDS = frozenset(
    "a an the is are was were be been do does did i my me you your we our it its to of in on "
    "for with at by from and or can could would should how what when where which who why "
    "will shall please any there this that have has had get so if not no yes".split()
    + list("的了吗呢吧啊是我你您们在有和就都也还要能会可以怎么什么哪多少")
)


def tokenize(text: str) -> list[str]:
    """Lower-cased words; Chinese runs are segmented by jieba (search mode)."""
    tokens: list[str] = []
    for run in _WORD.findall(text.lower()):
        if "\u4e00" <= run[0] <= "\u9fff":
            with _jieba_lock:
                words = jieba.lcut_for_search(run)
            tokens.extend(w for w in words if w not in STOPWORDS)
        elif run not in STOPWORDS:
            tokens.append(run)
    return tokens


class KeywordIndex:
    """BM25 over a fixed list of documents; `search` gives (position, score, coverage)."""

    def __init__(self, documents: Sequence[str]) -> None:
        self.tokens = [set(tokenize(d)) for d in documents]
        corpus = [tokenize(d) or ["\u0000"] for d in documents]
        self.bm25 = BM25Okapi(corpus) if corpus else None

    def search(self, query: str, k: int) -> list[tuple[int, float, float]]:
        """Top-k documents with a positive score. Coverage: share of query terms found."""
        terms = tokenize(query)
        if not terms or self.bm25 is None:
            return []
        scores = self.bm25.get_scores(terms)
        ranked = sorted(range(len(scores)), key=lambda i: -scores[i])[:k]
        unique = set(terms)
        return [
            (i, float(scores[i]), len(unique & self.tokens[i]) / len(unique))
            for i in ranked
            if scores[i] > 0
        ]
