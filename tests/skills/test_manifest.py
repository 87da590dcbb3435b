"""Skill manifests: validation, argument schemas, and OpenClaw SKILL.md front matter."""

from __future__ import annotations

from pathlib import Path

import pytest
from pydantic import ValidationError

from clawdesk.skills.manifest import SkillManifest, argument_errors, load_skill_md

ORDER_SCHEMA = {
    "type": "object",
    "properties": {
        "order": {"type": "string", "minLength": 1},
        "email": {"type": "string", "format": "email"},
    },
    "required": ["order"],
    "additionalProperties": False,
}


def manifest(**overrides: object) -> SkillManifest:
    fields: dict[str, object] = {"name": "order_status", "description": "Look up an order."}
    return SkillManifest.model_validate({**fields, **overrides})


@pytest.mark.parametrize("name", ["", "Order", "1order", "order status", "x" * 65])
def test_bad_names_are_refused(name: str) -> None:
    with pytest.raises(ValidationError):
        manifest(name=name)


@pytest.mark.parametrize(
    "parameters",
    [{"type": "string"}, {"type": "object", "properties": {"a": {"type": "nonsense"}}}],
)
def test_parameters_must_be_a_valid_object_schema(parameters: dict[str, object]) -> None:
    with pytest.raises(ValidationError):
        manifest(parameters=parameters)


@pytest.mark.parametrize(
    ("args", "fragment"),
    [
        ({}, "'order' is a required property"),
        ({"order": 1001}, "is not of type 'string'"),
        ({"order": "1001", "email": "not-an-email"}, "is not a 'email'"),
        ({"order": "1001", "skill": "refund"}, "Additional properties are not allowed"),
    ],
)
def test_arguments_are_checked_against_the_schema(args: dict[str, object], fragment: str) -> None:
    errors = argument_errors(manifest(parameters=ORDER_SCHEMA), args)
    assert any(fragment in e for e in errors), errors


def test_valid_arguments_have_no_errors() -> None:
    args = {"order": "#1001", "email": "a@example.com"}
    assert argument_errors(manifest(parameters=ORDER_SCHEMA), args) == []


def test_manifest_as_an_llm_tool() -> None:
    tool = manifest(parameters=ORDER_SCHEMA).tool()
    assert tool["type"] == "function"
    assert tool["function"]["name"] == "order_status"
    assert tool["function"]["parameters"]["required"] == ["order"]


def test_openclaw_skill_md_is_read(tmp_path: Path) -> None:
    path = tmp_path / "SKILL.md"
    path.write_text(
        "---\n"
        "name: zendesk-tickets\n"
        "description: Open and update Zendesk tickets.\n"
        "version: 1.0.0\n"
        "metadata:\n"
        "  openclaw:\n"
        "    requires:\n"
        "      env: [ZENDESK_API_TOKEN]\n"
        "      config: [zendesk_url]\n"
        "      bins: [curl]\n"
        "    primaryEnv: ZENDESK_API_TOKEN\n"
        "  clawdesk:\n"
        "    side_effects: true\n"
        "    settings: [zendesk_email]\n"
        "    parameters:\n"
        "      type: object\n"
        "      properties: {subject: {type: string}}\n"
        "      required: [subject]\n"
        "---\n"
        "# Zendesk\n\nInstructions for the agent...\n"
    )
    m = load_skill_md(path)
    assert (m.name, m.description, m.side_effects) == (
        "zendesk-tickets",
        "Open and update Zendesk tickets.",
        True,
    )
    assert m.secrets == ["ZENDESK_API_TOKEN"]
    assert m.settings == ["zendesk_email", "zendesk_url"]
    assert m.parameters["required"] == ["subject"]


def test_metadata_may_be_one_line_json(tmp_path: Path) -> None:
    path = tmp_path / "SKILL.md"
    path.write_text(
        "---\nname: weather\ndescription: Forecasts.\n"
        'metadata: {"clawdbot": {"requires": {"env": ["WEATHER_KEY"]}}}\n---\nbody\n'
    )
    m = load_skill_md(path)
    assert m.secrets == ["WEATHER_KEY"]
    assert m.parameters["type"] == "object" and not m.side_effects


@pytest.mark.parametrize("text", ["# no front matter\n", "---\nname: x\n", "---\n- a\n---\n"])
def test_malformed_skill_md_is_refused(tmp_path: Path, text: str) -> None:
    path = tmp_path / "SKILL.md"
    path.write_text(text)
    with pytest.raises(ValueError):
        load_skill_md(path)
