"""The shape of a skill's reply: what `render` returns and what a skill's own `reply`
function gives it (kept apart from `render` so skill modules can use it without
importing the renderer, which finds skills through the registry)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from schemas import SkillStatus

Data = dict[str, Any]


@dataclass(frozen=True)
class Rendered:
    """Chat text for a skill result. `with_kb`: put the knowledge-base answer first,
    when there is one (a return ticket goes with the return policy)."""

    text: str
    sources: list[str] = field(default_factory=list)
    handoff: bool = False
    with_kb: bool = False


#: A skill's own rendering of a result: (status, texts, localised data, language) ->
#: the reply, or None to leave it to the generic rendering. `texts` are the generic
#: templates overlaid with the skill's manifest templates in that language.
SkillReply = Callable[[SkillStatus, dict[str, str], Data, str], "Rendered | None"]
