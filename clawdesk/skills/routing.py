"""The routing table the dialogue decides with: which skill each NLU intent chooses,
how the message fills its arguments, and which skills have side effects — built once
from the manifests of the loaded registry, so an installed plugin is routed exactly
like a built-in."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field

from clawdesk.skills.base import Skill
from clawdesk.skills.manifest import Route

HANDOFF = "handoff"  # the skill whose intents hand the conversation to a person


@dataclass(frozen=True)
class SkillRoute:
    """One route with the skill it leads to."""

    skill: str
    route: Route


@dataclass(frozen=True)
class Routes:
    """Intent → routes (main route first, then alternatives), side-effect skills, and
    the intents that hand off. Immutable: the dialogue only reads it."""

    by_intent: dict[str, tuple[SkillRoute, ...]] = field(default_factory=dict)
    side_effects: frozenset[str] = frozenset()
    handoff_intents: frozenset[str] = frozenset()

    @classmethod
    def of(cls, skills: Iterable[Skill]) -> Routes:
        """The table of these skills' manifests (a registry iterates its skills). Two
        main routes for one intent: the first skill (registration order) keeps it."""
        main: dict[str, SkillRoute] = {}
        alternatives: dict[str, list[SkillRoute]] = {}
        side_effects: set[str] = set()
        handoff: set[str] = set()
        for skill in skills:
            manifest = skill.manifest
            if manifest.side_effects:
                side_effects.add(manifest.name)
            for route in manifest.routes:
                if manifest.name == HANDOFF:
                    handoff.add(route.intent)
                elif route.verified_only:
                    alternatives.setdefault(route.intent, []).append(SkillRoute(skill.name, route))
                else:
                    main.setdefault(route.intent, SkillRoute(skill.name, route))
        by_intent = {intent: (main[intent], *alternatives.get(intent, ())) for intent in main}
        return cls(by_intent, frozenset(side_effects), frozenset(handoff))

    def main(self, intent: str) -> SkillRoute | None:
        """The route the intent takes (None: no skill answers it)."""
        routes = self.by_intent.get(intent)
        return routes[0] if routes else None

    def alternatives(self, intent: str) -> tuple[SkillRoute, ...]:
        """The intent's other routes (for a verified customer who named nothing)."""
        return self.by_intent.get(intent, ())[1:]

    def routes(self, intent: str | None) -> bool:
        """Whether a skill answers the intent."""
        return intent is not None and intent in self.by_intent

    def has_side_effects(self, skill: str | None) -> bool:
        """Whether the skill changes the world (its run waits for a "yes")."""
        return skill in self.side_effects

    def hands_off(self, intent: str) -> bool:
        """Whether the intent asks for a person."""
        return intent in self.handoff_intents
