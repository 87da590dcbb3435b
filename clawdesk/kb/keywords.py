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
    """Lower-cased words. Chinese runs give jieba's words (search mode) plus character
    bigrams, so a segmentation slip (多少钱包邮 → 多少/钱包/邮) still matches 包邮."""
    tokens: list[str] = []
    for run in _WORD.findall(text.lower()):
        if "\u4e00" <= run[0] <= "\u9fff":
            with _jieba_lock:
                words = jieba.lcut_for_search(run)
            tokens.extend(w for w in words if w not in STOPWORDS)
            tokens.extend(
                run[i : i + 2]
                for i in range(len(run) - 1)
                if not (run[i] in STOPWORDS and run[i + 1] in STOPWORDS)
            )
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
        """Top-k documents sharing a term with the query: (position, BM25 score, coverage =
        share of the query's distinct terms found in the document)."""
        terms = tokenize(query)
        if not terms or self.bm25 is None:
            return []
        scores = self.bm25.get_scores(terms)
        unique = set(terms)
        coverage = [len(unique & doc) / len(unique) for doc in self.tokens]
        # Filter on shared terms, not on the score: in a tiny corpus BM25's idf of a term
        # found in half the documents is 0, yet the match still counts.
        ranked = sorted(
            (i for i in range(len(scores)) if coverage[i] > 0),
            key=lambda i: (-scores[i], -coverage[i]),
        )[:k]
        return [(i, float(scores[i]), coverage[i]) for i in ranked]
