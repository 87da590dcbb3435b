"""Whether an intent model gets the multilingual block: decided on the training texts."""

from __future__ import annotations

from collections.abc import Sequence

from clawdesk.nlu.language import detect_language
from clawdesk.nlu.multilingual import AUTO, MULTILINGUAL_E5

__all__ = ["AUTO_MIN_SHARE", "non_english_share", "resolve_multilingual"]

# Share of training texts not in English above which "auto" adds the multilingual block.
# The English benchmark files hold 0–0.1 % (names and one-word texts the detector calls
# Portuguese or Indonesian); a tenant with Chinese customers holds far more.
AUTO_MIN_SHARE = 0.05


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
