"""Retrieval quality on a question set with known answers (recall@1/@5, MRR,
answerability), as `clawdesk eval retrieval` prints it."""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from clawdesk.kb.index import KnowledgeBase
from clawdesk.nlu.language import detect_language
from schemas import KbHit


@dataclass
class RetrievalReport:
    """Figures over the answerable questions, and answerability over all of them."""

    answerable: int = 0
    unanswerable: int = 0
    hits_at_1: int = 0
    hits_at_5: int = 0
    reciprocal_ranks: float = 0.0
    answered_correctly: int = 0  # answerable questions judged answerable
    refused_correctly: int = 0  # unanswerable questions judged unanswerable
    by_lang: dict[str, list[int]] = field(default_factory=dict)  # lang -> [n, hits@1]

    @property
    def recall_at_1(self) -> float:
        """Share of answerable questions whose first hit is the expected section."""
        return self.hits_at_1 / self.answerable if self.answerable else 0.0

    @property
    def recall_at_5(self) -> float:
        """Share of answerable questions with the expected section in the top 5."""
        return self.hits_at_5 / self.answerable if self.answerable else 0.0

    @property
    def mrr(self) -> float:
        """Mean reciprocal rank of the expected section (0 when outside the top 5)."""
        return self.reciprocal_ranks / self.answerable if self.answerable else 0.0


def evaluate_retrieval(
    kb: KnowledgeBase, tenant_id: str, questions_file: Path, is_relevant: Callable[[KbHit], bool]
) -> RetrievalReport:
    """Search every question of a JSONL set (question, lang, expected_doc, expected_section)
    as the retrieve stage does: in the language the nlu stage detects."""
    report = RetrievalReport()
    rows = [json.loads(line) for line in questions_file.read_text().splitlines() if line.strip()]
    vectors = kb.embedder.encode([r["question"] for r in rows])
    for row, vec in zip(rows, vectors, strict=True):
        language = detect_language(row["question"])
        hits: list[KbHit] = kb.search(
            tenant_id, row["question"], vec.tolist(), 5, language=language
        )
        judged = bool(hits) and is_relevant(hits[0])
        if row["expected_doc"] is None:
            report.unanswerable += 1
            report.refused_correctly += not judged
            continue
        report.answerable += 1
        report.answered_correctly += judged
        ranks = [
            i
            for i, h in enumerate(hits)
            if h.doc_id == row["expected_doc"] and h.section == row["expected_section"]
        ]
        lang = report.by_lang.setdefault(row.get("lang", "?"), [0, 0])
        lang[0] += 1
        if ranks:
            report.hits_at_5 += 1
            report.reciprocal_ranks += 1 / (ranks[0] + 1)
            report.hits_at_1 += ranks[0] == 0
            lang[1] += ranks[0] == 0
    return report
