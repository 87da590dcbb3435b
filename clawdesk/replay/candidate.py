"""What a replay's candidate changes from production: settings, given as `key=value`
pairs (`--candidate "nlu_min_confidence=0.95,kb=docs/kb-v2"`) or a YAML/JSON file.

Keys are `AppSettings` fields (thresholds, encoder, LLM...) or one of the aliases below.
The keys a replay sets itself (app id, topics, data dir, ports) are refused.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml
from pydantic import ValidationError

from clawdesk.settings import AppSettings

ALIASES = {
    "intent_model": "nlu_model_version",
    "model_version": "nlu_model_version",
    "kb": "kb_dir",
    "encoder": "embedding_model",
    "threshold": "nlu_min_confidence",
}
# Set by the replay itself: a candidate changes behaviour, not where a run lives.
RESERVED = frozenset(
    {
        "app_id",
        "topic_prefix",
        "shadow_run",
        "data_dir",
        "metrics_port",
        "worker_web_port",
        "supervisor_metrics_port",
        "gateway_port",
        "web_port",
    }
)
PATH_KEYS = frozenset({"kb_dir", "models_dir"})


class BadCandidate(ValueError):
    """The candidate spec names an unknown setting or an invalid value."""


@dataclass(frozen=True)
class Candidate:
    """Settings overrides, by `AppSettings` field name (values as given, as text)."""

    overrides: dict[str, str] = field(default_factory=dict)

    @property
    def unchanged(self) -> bool:
        """Whether this is production's own version."""
        return not self.overrides

    def env(self) -> dict[str, str]:
        """The overrides as the worker's environment variables."""
        return {f"CLAWDESK_{k.upper()}": v for k, v in self.overrides.items()}

    def describe(self) -> str:
        """One line for tables: `key=value, …` or `production`."""
        shown = {k: ("***" if "key" in k or "token" in k else v) for k, v in self.overrides.items()}
        return ", ".join(f"{k}={v}" for k, v in sorted(shown.items())) or "production"


def parse(spec: str) -> Candidate:
    """A candidate from `key=value,…`, a YAML/JSON file's path, or "" / "production"."""
    spec = spec.strip()
    if spec in ("", "production", "unchanged"):
        return Candidate()
    path = Path(spec)
    if path.suffix in (".yaml", ".yml", ".json") and path.is_file():
        loaded = yaml.safe_load(path.read_text()) if path.suffix != ".json" else None
        pairs = loaded if loaded is not None else json.loads(path.read_text())
        if not isinstance(pairs, dict):
            raise BadCandidate(f"{path}: expected a mapping of setting → value")
    else:
        pairs = {}
        for item in filter(None, (p.strip() for p in spec.split(","))):
            key, sep, value = item.partition("=")
            if not sep:
                raise BadCandidate(f"not key=value: {item!r}")
            pairs[key.strip()] = value.strip()
    return Candidate(_validated(pairs))


def _validated(pairs: dict[str, Any]) -> dict[str, str]:
    out: dict[str, str] = {}
    for raw_key, value in pairs.items():
        key = ALIASES.get(str(raw_key), str(raw_key))
        if key == "llm":
            out.update(_llm(str(value)))
            continue
        if key in RESERVED:
            raise BadCandidate(f"{raw_key!r} is set by the replay itself")
        if key not in AppSettings.model_fields:
            raise BadCandidate(f"unknown setting {raw_key!r} (see clawdesk.settings.AppSettings)")
        text = value if isinstance(value, str) else json.dumps(value)
        if key in PATH_KEYS and text:
            text = str(Path(text).expanduser().resolve())
            if not Path(text).is_dir():
                raise BadCandidate(f"{raw_key}: no such folder {text}")
        out[key] = text
    try:  # the worker would refuse it at start; say so now, with the field
        AppSettings(_env_file=None, **{k: _typed(k, v) for k, v in out.items()})  # type: ignore[call-arg]
    except ValidationError as err:
        raise BadCandidate(str(err)) from err
    return out


def _llm(value: str) -> dict[str, str]:
    """`llm=off` turns LLM mode off (offline replies); `llm=on` keeps the configured one."""
    if value.lower() in ("off", "false", "0", "no"):
        return {"llm_base_url": ""}
    if value.lower() in ("on", "true", "1", "yes"):
        return {}
    raise BadCandidate(f"llm must be on or off, not {value!r}")


def _typed(key: str, text: str) -> Any:
    # Environment values are text; pydantic parses JSON for complex fields the same way.
    annotation = str(AppSettings.model_fields[key].annotation)
    if "dict" in annotation or "list" in annotation:
        return json.loads(text)
    return text
