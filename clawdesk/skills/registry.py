"""The skills a worker can run, found through the `clawdesk.skills` entry-point group.

A plugin package declares, in its pyproject:

    [project.entry-points."clawdesk.skills"]
    my_skill = "my_package.skills:my_skill"   # a `clawdesk.skills.Skill` instance

Which of the registered skills a tenant may use is decided elsewhere (the runner's
allow-list); registering a skill enables it for nobody.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Iterator
from functools import lru_cache
from importlib import metadata
from typing import Any

from clawdesk.skills.base import Skill
from clawdesk.skills.manifest import SkillManifest, argument_errors

log = logging.getLogger(__name__)

ENTRY_POINT_GROUP = "clawdesk.skills"


class UnknownSkill(KeyError):
    """No skill of that name is registered."""


class InvalidArguments(ValueError):
    """Arguments that do not fit the skill's JSON Schema."""

    def __init__(self, skill: str, errors: list[str]) -> None:
        super().__init__(f"invalid arguments for {skill}: {'; '.join(errors)}")
        self.skill = skill
        self.errors = errors


class SkillRegistry:
    """Skills by name."""

    def __init__(self) -> None:
        self._skills: dict[str, Skill] = {}

    def register(self, skill: Skill, *, replace: bool = False) -> Skill:
        """Add a skill. A second skill under a taken name is refused unless `replace`."""
        if not isinstance(skill, Skill):
            raise TypeError(f"not a Skill: {skill!r}")
        current = self._skills.get(skill.name)
        if current is not None and current is not skill and not replace:
            raise ValueError(f"a different skill named {skill.name!r} is already registered")
        self._skills[skill.name] = skill
        return skill

    def discover(self, group: str = ENTRY_POINT_GROUP) -> list[str]:
        """Register every skill the installed packages declare; return their names.

        A broken plugin is logged and skipped: it must not stop the worker. A plugin
        may not take the name of a skill already registered (e.g. a built-in).
        """
        found: list[str] = []
        for entry_point in metadata.entry_points(group=group):
            try:
                skill = entry_point.load()
                self.register(skill)
            except Exception:
                log.exception(
                    "skill plugin rejected",
                    extra={"entry_point": entry_point.name, "value": entry_point.value},
                )
                continue
            if entry_point.name != skill.name:
                log.warning(
                    "entry point name differs from the skill's",
                    extra={"entry_point": entry_point.name, "skill": skill.name},
                )
            found.append(skill.name)
        return found

    def get(self, name: str) -> Skill:
        """The skill of that name (raises `UnknownSkill`)."""
        try:
            return self._skills[name]
        except KeyError:
            raise UnknownSkill(name) from None

    def find(self, name: str) -> Skill | None:
        """The skill of that name, or None."""
        return self._skills.get(name)

    def __contains__(self, name: object) -> bool:
        return name in self._skills

    def __iter__(self) -> Iterator[Skill]:
        return iter(list(self._skills.values()))

    def names(self) -> list[str]:
        return sorted(self._skills)

    def manifests(self) -> list[SkillManifest]:
        return [self._skills[n].manifest for n in self.names()]

    def tools(self, allowed: Iterable[str]) -> list[dict[str, Any]]:
        """Function-tool schemas of the allowed skills only (what an LLM may be offered)."""
        allow = set(allowed)
        return [m.tool() for m in self.manifests() if m.name in allow]

    def validate(self, name: str, args: dict[str, Any]) -> None:
        """Raise `InvalidArguments` unless `args` fit the skill's schema."""
        errors = argument_errors(self.get(name).manifest, args)
        if errors:
            raise InvalidArguments(name, errors)


def load_registry(*, include_builtins: bool = True) -> SkillRegistry:
    """A registry with the built-in skills (even when the package's entry points are not
    installed, e.g. a source checkout) plus every plugin found through entry points."""
    registry = SkillRegistry()
    if include_builtins:
        from clawdesk.skills.builtin import BUILTIN_SKILLS

        for skill in BUILTIN_SKILLS:
            registry.register(skill)
    registry.discover()
    return registry


@lru_cache(maxsize=1)
def installed() -> SkillRegistry:
    """The registry of the installed skills, loaded once per process (the reply
    templates read it; `installed.cache_clear()` after installing a plugin)."""
    return load_registry()


#: The process-wide registry; `register` adds to it (tests, embedding apps).
default_registry = SkillRegistry()
register = default_registry.register
