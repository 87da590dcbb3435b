"""Whether retrieved passages can answer a message, or the reply must clarify/hand off."""

from __future__ import annotations

from schemas import KbHit, NluResult

# Small talk and handoff requests are never answered from the knowledge base.
NO_KB_INTENTS = frozenset({"greeting", "thanks", "goodbye", "human_agent"})
# Shares of the question's terms a passage must contain. Chosen on the demo question set
# (clawdesk/data/kb_questions.jsonl, answerable vs unanswerable), so they are tuned, not
# held-out figures.
MIN_KEYWORD_COVERAGE = 0.5
# When the embedding model cannot read the question (score 0: no dense ranking was made,
# e.g. Chinese with the packaged English model), the words alone decide.
MIN_KEYWORD_COVERAGE_UNREAD = 0.13


def is_relevant(hit: KbHit, min_score: float) -> bool:
    """A hit answers the question if it is close in meaning, or shares enough of its words."""
    if hit.score == 0.0:
        return hit.keyword >= MIN_KEYWORD_COVERAGE_UNREAD
    return hit.score >= min_score or hit.keyword >= MIN_KEYWORD_COVERAGE


def is_answerable(nlu: NluResult, hits: list[KbHit], min_score: float) -> bool:
    """Whether the best hit is strong enough to answer from."""
    if nlu.intent in NO_KB_INTENTS or not hits:
        return False
    return is_relevant(hits[0], min_score)
