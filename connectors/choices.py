"""What a pressed button, list item or menu entry means.

A tenant names its buttons' ids. An id `intent:<name>` states the intent outright;
other ids may be mapped to an intent in the channel's settings; any other id is read
as the customer's text (so `yes` / `no` buttons answer a confirmation question).
"""

from __future__ import annotations

from collections.abc import Mapping

INTENT_PREFIX = "intent:"


def intent_of(choice: str, mapping: Mapping[str, str] | None = None) -> str | None:
    """The intent a choice id stands for, or None when it stands for none."""
    if choice.startswith(INTENT_PREFIX):
        name = choice.removeprefix(INTENT_PREFIX).strip()
        return name[:64] or None
    if mapping and choice in mapping:
        return mapping[choice]
    return None


def text_of(choice: str, intent: str | None, title: str | None = None) -> str:
    """The text a choice stands for: its title when the channel shows one, else the
    intent in words, else the id itself."""
    if title:
        return title
    if intent is not None:
        return intent.replace("_", " ")
    return choice
