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
    """Whether the best hit is strong enough to answer from. When the intent model
    itself judged the message out of scope ("tell me a joke"), a few shared words are
    not enough: the passage must be close in meaning or share half the words. So too
    when no intent led clearly: a few shared characters of a Chinese question are no
    answer to it."""
    if nlu.intent in NO_KB_INTENTS or not hits:
        return False
    best = hits[0]
    if nlu.decided_by in ("oos", "unsure"):
        return best.score >= min_score or best.keyword >= MIN_KEYWORD_COVERAGE
    return is_relevant(best, min_score)
