"""Whether retrieved passages can answer a message, or the reply must clarify/hand off."""

from __future__ import annotations

from schemas import KbHit, NluResult

# Small talk and handoff requests are never answered from the knowledge base.
NO_KB_INTENTS = frozenset({"greeting", "thanks", "goodbye", "human_agent"})
MIN_KEYWORD_COVERAGE = 0.25  # chosen on the demo question set (answerable vs not)


def is_relevant(hit: KbHit, min_score: float, min_keyword: float = MIN_KEYWORD_COVERAGE) -> bool:
    """A hit answers the question if it is close in meaning, or shares enough of its words
    (the packaged English model cannot read Chinese; the keyword side can)."""
    return hit.score >= min_score or hit.keyword >= min_keyword


def is_answerable(nlu: NluResult, hits: list[KbHit], min_score: float) -> bool:
    """Whether the best hit is strong enough to answer from."""
    if nlu.intent in NO_KB_INTENTS or not hits:
        return False
    return is_relevant(hits[0], min_score)
