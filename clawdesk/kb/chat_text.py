"""Knowledge-base Markdown as chat text: what a customer sees of a passage.

Passages are written for a help centre: emphasis, links to other pages
(`[订单问题](orders.md)`), bullets, and lines hard-wrapped at ~90 characters by the
author's editor. In a chat bubble those show as raw markup and broken lines, so the
reply keeps the words and the list structure and drops the rest.
"""

from __future__ import annotations

import re

__all__ = ["chat_text"]

_EMPHASIS = re.compile(r"\*\*(.+?)\*\*|__(.+?)__")
_LINK = re.compile(r"!?\[([^\]]*)\]\([^)]*\)")
_BULLET = re.compile(r"^[-*]\s+", re.M)
# A line that starts its own item: a bullet, a numbered step, a table row, a heading.
_ITEM = re.compile(r"^\s*(?:[-*•]\s|\d+[.)]\s|\||#)")
_CJK = re.compile(r"[\u3000-\u303f\u3400-\u9fff\uff00-\uffef]")


def _join(left: str, right: str) -> str:
    # Chinese is written without spaces: a wrapped line joins on directly.
    if left and _CJK.match(left[-1]) and _CJK.match(right[:1] or " "):
        return left + right
    return f"{left} {right}"


def _unwrap(paragraph: str) -> str:
    lines: list[str] = []
    for raw in paragraph.splitlines():
        line = raw.strip()
        if not line:
            continue
        if lines and not _ITEM.match(raw):
            lines[-1] = _join(lines[-1], line)
        else:
            lines.append(line)
    return "\n".join(lines)


def chat_text(markdown: str) -> str:
    """The passage as chat text: no emphasis markers or link targets, bullets as •,
    hard-wrapped lines joined (list items and paragraphs kept apart)."""
    text = _EMPHASIS.sub(lambda m: m.group(1) or m.group(2), markdown)
    text = _LINK.sub(lambda m: m.group(1), text)
    paragraphs = re.split(r"\n\s*\n", text.strip())
    unwrapped = "\n\n".join(p for p in (_unwrap(p) for p in paragraphs) if p)
    return _BULLET.sub("• ", unwrapped)
