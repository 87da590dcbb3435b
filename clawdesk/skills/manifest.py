"""What a skill declares about itself: name, purpose, arguments (JSON Schema), whether it
changes anything in the world, the settings and secrets it needs, which NLU intents
choose it (and which entities fill which arguments), and what the bot says about it:
the confirmation question and reply templates, per language.

`load_skill_md` reads the same from an OpenClaw-style `SKILL.md` (YAML front matter),
so a skill written for OpenClaw can be described to clawdesk without rewriting it.
"""

from __future__ import annotations

import json
from functools import lru_cache
from pathlib import Path
from typing import Any

import yaml
from jsonschema import Draft202012Validator, FormatChecker
from jsonschema.exceptions import SchemaError
from pydantic import BaseModel, ConfigDict, Field, field_validator

# OpenClaw reads its runtime metadata under these keys (the last two are legacy aliases).
OPENCLAW_KEYS = ("openclaw", "clawdbot", "clawdis")
NAME_PATTERN = r"^[a-z][a-z0-9_-]{0,63}$"


def empty_parameters() -> dict[str, Any]:
    return {"type": "object", "properties": {}, "additionalProperties": False}


#: Templates per language: {"en": {"done": "...", ...}, "zh": {...}}.
Templates = dict[str, dict[str, str]]


class Route(BaseModel):
    """An NLU intent that chooses the skill, and how the message fills its arguments.

    The dialogue (`clawdesk.skills.dialogue`) reads routes from the loaded registry
    (`clawdesk.skills.routing.Routes`); the skill is chosen from the intent, never from
    words in the message.
    """

    model_config = ConfigDict(frozen=True, extra="forbid")

    intent: str = Field(min_length=1, max_length=64)
    entities: dict[str, str] = Field(
        default_factory=dict,
        description="entity kind -> argument it fills (order_number -> order)",
    )
    remembered: list[str] = Field(
        default_factory=list,
        description="entity kinds also taken from the conversation's memory when the "
        "message does not name them (the order talked about earlier)",
    )
    decisive: list[str] = Field(
        default_factory=list,
        description="entity kinds that, named in this very message, run the skill at once "
        "with only that argument (a tracking number is unambiguous)",
    )
    ask: str | None = Field(
        default=None,
        description="the argument asked for when no entity filled one (e.g. order)",
    )
    verify_with: str | None = Field(
        default=None,
        description="the argument that identifies the customer when the channel does not "
        "vouch for their e-mail (e.g. email): taken from memory, else asked for",
    )
    verified_only: bool = Field(
        default=False,
        description="an alternative for a customer whose e-mail the channel vouches for, "
        "taken when the intent's main route finds nothing to fill (order_list)",
    )
    named_only: bool = Field(
        default=False,
        description="only when the message itself names one of the entities",
    )
    arguments: dict[str, str] = Field(
        default_factory=dict,
        description="arguments written from the filled ones and the message: str.format "
        "templates over them and {text}; when given, these are all the arguments",
    )


class SkillManifest(BaseModel):
    """A skill's contract. `parameters` is the JSON Schema (2020-12) of its arguments."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    name: str = Field(pattern=NAME_PATTERN)
    description: str = Field(min_length=1, max_length=1024)
    parameters: dict[str, Any] = Field(default_factory=empty_parameters)
    side_effects: bool = Field(
        default=False, description="changes the world (money, orders): needs confirmation"
    )
    settings: list[str] = Field(default_factory=list, description="settings fields it reads")
    secrets: list[str] = Field(default_factory=list, description="secret settings it reads")
    keyed: bool = Field(
        default=False,
        description="writes outside without being a side effect to confirm (a ticket): "
        "its run is keyed by the event, so a redelivery does not write twice",
    )
    routes: list[Route] = Field(default_factory=list, description="the intents that choose it")
    confirmation: dict[str, str] = Field(
        default_factory=dict,
        description="per language, the question asked before a side effect runs: "
        "str.format over the preview's facts and the arguments",
    )
    templates: Templates = Field(
        default_factory=dict,
        description="per language, the reply texts (done, declined, action, ...)",
    )

    @field_validator("parameters")
    @classmethod
    def _is_an_object_schema(cls, schema: dict[str, Any]) -> dict[str, Any]:
        try:
            Draft202012Validator.check_schema(schema)
        except SchemaError as exc:
            raise ValueError(f"parameters is not a valid JSON Schema: {exc.message}") from exc
        if schema.get("type") != "object":
            raise ValueError('parameters must be a schema of "type": "object"')
        return schema

    @property
    def keyed_runs(self) -> bool:
        """Whether a run is keyed by its event (side effects and other writes)."""
        return self.side_effects or self.keyed

    def texts(self, language: str) -> dict[str, str]:
        """The reply templates in `language`, else in English, else none."""
        return self.templates.get(language) or self.templates.get("en") or {}

    def confirmation_text(self, language: str) -> str | None:
        """The confirmation question in `language`, else in English, else None."""
        return self.confirmation.get(language) or self.confirmation.get("en")

    def tool(self) -> dict[str, Any]:
        """The manifest as an OpenAI-compatible function tool (for an LLM planner)."""
        return {
            "type": "function",
            "function": {
                "name": self.name,
                "description": self.description,
                "parameters": self.parameters,
            },
        }


@lru_cache(maxsize=256)
def _validator(schema_json: str) -> Draft202012Validator:
    return Draft202012Validator(json.loads(schema_json), format_checker=FormatChecker())


def argument_errors(manifest: SkillManifest, args: dict[str, Any]) -> list[str]:
    """Why `args` do not fit the manifest's schema (empty when they do)."""
    validator = _validator(json.dumps(manifest.parameters, sort_keys=True))
    errors = sorted(validator.iter_errors(args), key=lambda e: list(e.absolute_path))
    return [f"{'/'.join(map(str, e.absolute_path)) or '(arguments)'}: {e.message}" for e in errors]


def front_matter(text: str) -> dict[str, Any]:
    """The YAML between the leading `---` lines of a Markdown file."""
    lines = text.lstrip("\ufeff").splitlines()
    if not lines or lines[0].strip() != "---":
        raise ValueError("SKILL.md has no YAML front matter")
    for end, line in enumerate(lines[1:], start=1):
        if line.strip() == "---":
            data = yaml.safe_load("\n".join(lines[1:end])) or {}
            if not isinstance(data, dict):
                raise ValueError("SKILL.md front matter is not a mapping")
            return data
    raise ValueError("SKILL.md front matter is not closed by ---")


def _mapping(value: Any) -> dict[str, Any]:
    # OpenClaw allows `metadata` as a one-line JSON string as well as YAML.
    if isinstance(value, str):
        value = json.loads(value)
    return value if isinstance(value, dict) else {}


def load_skill_md(path: Path | str) -> SkillManifest:
    """A manifest from a `SKILL.md` front matter.

    `name` and `description` are OpenClaw's. Under `metadata.clawdesk` a skill may give
    `parameters`, `side_effects`, `settings` and `secrets`; OpenClaw's
    `metadata.openclaw.requires.env` adds to `secrets` and `requires.config` to `settings`.
    """
    data = front_matter(Path(path).read_text(encoding="utf-8"))
    metadata = _mapping(data.get("metadata"))
    ours = _mapping(metadata.get("clawdesk"))
    theirs = next((_mapping(metadata[k]) for k in OPENCLAW_KEYS if k in metadata), {})
    requires = _mapping(theirs.get("requires"))
    secrets = [*ours.get("secrets", []), *requires.get("env", [])]
    settings = [*ours.get("settings", []), *requires.get("config", [])]
    return SkillManifest(
        name=data.get("name", ""),
        description=str(data.get("description", "")).strip(),
        parameters=ours.get("parameters") or empty_parameters(),
        side_effects=bool(ours.get("side_effects", False)),
        settings=list(dict.fromkeys(settings)),
        secrets=list(dict.fromkeys(secrets)),
    )
