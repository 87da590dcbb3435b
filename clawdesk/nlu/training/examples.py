"""Labelled examples for training an intent model, and reading them from files.

Two input formats:

* JSON Lines, one ``{"text": ..., "intent": ...}`` object per line (the format of the
  benchmark datasets);
* YAML, as a tenant would write it by hand::

      intents:
        refund:
          - I want my money back
          - 我要退款
        order_status:
          - where is my order
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import yaml
from pydantic import BaseModel, ConfigDict, field_validator

__all__ = ["IntentExample", "load_examples"]


class IntentExample(BaseModel):
    """One labelled utterance."""

    model_config = ConfigDict(frozen=True)

    text: str
    intent: str

    @field_validator("text", "intent")
    @classmethod
    def _not_blank(cls, v: str) -> str:
        if not v.strip():
            raise ValueError("must not be blank")
        return v


def load_examples(path: str | Path) -> list[IntentExample]:
    """Read labelled examples from a ``.jsonl``/``.json`` or ``.yaml``/``.yml`` file.

    Raises ``ValueError`` with the line number (JSONL) or intent (YAML) of a bad entry.
    """
    p = Path(path)
    suffix = p.suffix.lower()
    if suffix in (".yaml", ".yml"):
        return _load_yaml(p)
    if suffix in (".jsonl", ".json", ".ndjson"):
        return _load_jsonl(p)
    raise ValueError(f"unknown example file type {suffix!r} (use .jsonl or .yaml): {p}")


def _load_jsonl(p: Path) -> list[IntentExample]:
    out: list[IntentExample] = []
    with p.open(encoding="utf-8") as fh:
        for lineno, line in enumerate(fh, 1):
            if not line.strip():
                continue
            try:
                row = json.loads(line)
                out.append(IntentExample(text=row["text"], intent=row["intent"]))
            except (json.JSONDecodeError, KeyError, TypeError, ValueError) as exc:
                raise ValueError(f"{p}:{lineno}: bad example: {exc}") from exc
    return out


def _load_yaml(p: Path) -> list[IntentExample]:
    data: Any = yaml.safe_load(p.read_text(encoding="utf-8"))
    if not isinstance(data, dict) or not isinstance(data.get("intents"), dict):
        raise ValueError(f"{p}: expected a mapping with an 'intents' mapping")
    out: list[IntentExample] = []
    for intent, texts in data["intents"].items():
        if not isinstance(texts, list):
            raise ValueError(f"{p}: intent {intent!r}: expected a list of texts")
        for text in texts:
            if not isinstance(text, str):
                raise ValueError(f"{p}: intent {intent!r}: expected text, got {text!r}")
            try:
                out.append(IntentExample(text=text, intent=str(intent)))
            except ValueError as exc:
                raise ValueError(f"{p}: intent {intent!r}: {exc}") from exc
    return out
