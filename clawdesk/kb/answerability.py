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
# The multilingual encoder (multilingual-e5-small) scores every pair of Chinese texts
# 0.80-0.92: on the demo questions an answer's passage scores 0.88-0.92 and the
# passages nearest to off-topic questions 0.84-0.88. At least this close answers; a
# little less close answers if the passage also shares words (30 of 30 demo Chinese
# questions answered, 1 of 4 unanswerable ones; the keyword share alone: 26 and 0).
MIN_MULTILINGUAL = 0.89
# Near-verbatim matches of a KB question, on each encoder's scale.
SAME_QUESTION = 0.80
SAME_QUESTION_MULTILINGUAL = 0.95
MIN_MULTILINGUAL_WORDS = 0.88


def is_same_question(hit: KbHit) -> bool:
    """Whether the hit's FAQ question (or heading) is the customer's question itself,
    near enough word for word."""
    return hit.score >= SAME_QUESTION or hit.multilingual >= SAME_QUESTION_MULTILINGUAL


def is_relevant(hit: KbHit, min_score: float) -> bool:
    """A hit answers the question if it is close in meaning, or shares enough of its words."""
    if hit.score == 0.0:
        return _unread_relevant(hit)
    return hit.score >= min_score or hit.keyword >= MIN_KEYWORD_COVERAGE


def _unread_relevant(hit: KbHit) -> bool:
    # The first encoder could not read the question (Chinese with an English model):
    # the multilingual encoder's closeness decides, or with none, the shared words.
    if hit.multilingual == 0.0:
        return hit.keyword >= MIN_KEYWORD_COVERAGE_UNREAD
    return hit.multilingual >= MIN_MULTILINGUAL or (
        hit.keyword >= MIN_KEYWORD_COVERAGE_UNREAD and hit.multilingual >= MIN_MULTILINGUAL_WORDS
    )


def is_answerable(nlu: NluResult, hits: list[KbHit], min_score: float) -> bool:
    """Whether the best hit is strong enough to answer from. When the intent model
    itself judged the message out of scope ("tell me a joke"), or no intent led clearly,
    shared words are not enough: the passage must be close in meaning (or, for a
    question the first encoder reads, share half its words)."""
    if nlu.intent in NO_KB_INTENTS or not hits:
        return False
    best = hits[0]
    if nlu.decided_by in ("oos", "unsure"):
        if best.score == 0.0 and best.multilingual > 0.0:
            return best.multilingual >= MIN_MULTILINGUAL
        if best.score == 0.0:
            return best.keyword >= MIN_KEYWORD_COVERAGE
    return is_relevant(best, min_score)
