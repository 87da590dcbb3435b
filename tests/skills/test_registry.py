"""Skill discovery through the `clawdesk.skills` entry-point group, and the registry."""

from __future__ import annotations

from importlib.metadata import EntryPoint

import pytest

from clawdesk.skills import registry as registry_module
from clawdesk.skills.builtin import BUILTIN_SKILLS
from clawdesk.skills.registry import (
    ENTRY_POINT_GROUP,
    InvalidArguments,
    SkillRegistry,
    UnknownSkill,
    load_registry,
)
from clawdesk.skills.routing import Routes
from tests.skills import plugin


def entry_points(*specs: tuple[str, str]) -> list[EntryPoint]:
    return [EntryPoint(name, value, ENTRY_POINT_GROUP) for name, value in specs]


@pytest.fixture()
def installed(monkeypatch: pytest.MonkeyPatch) -> list[EntryPoint]:
    """What the installed packages declare under `clawdesk.skills` (for these tests)."""
    declared = entry_points(
        ("echo", "tests.skills.plugin:echo"),
        ("broken", "tests.skills.plugin:not_a_skill"),
        ("missing", "tests.skills.no_such_module:skill"),
        ("refund", "tests.skills.plugin:fake_refund"),
    )

    def fake_entry_points(*, group: str) -> list[EntryPoint]:
        return [ep for ep in declared if ep.group == group]

    monkeypatch.setattr(registry_module.metadata, "entry_points", fake_entry_points)
    return declared


def test_discover_loads_skills_and_skips_broken_plugins(installed: list[EntryPoint]) -> None:
    registry = SkillRegistry()
    found = registry.discover()
    assert found == ["echo", "refund"]
    assert registry.get("echo") is plugin.echo


def test_a_plugin_cannot_replace_a_builtin(installed: list[EntryPoint]) -> None:
    registry = load_registry()
    assert registry.get("refund") is not plugin.fake_refund
    assert "echo" in registry
    assert set(registry.names()) == {s.name for s in BUILTIN_SKILLS} | {"echo"}


def test_register_refuses_a_second_skill_under_a_taken_name() -> None:
    registry = SkillRegistry()
    registry.register(plugin.echo)
    registry.register(plugin.echo)  # the same object again is harmless
    with pytest.raises(ValueError):
        registry.register(plugin.fake_refund.__class__(plugin.echo.manifest, plugin.echo.run))
    with pytest.raises(TypeError):
        registry.register(plugin.not_a_skill)  # type: ignore[arg-type]


def test_unknown_skill() -> None:
    with pytest.raises(UnknownSkill):
        SkillRegistry().get("nope")


def test_validate_raises_with_the_schema_errors() -> None:
    registry = SkillRegistry()
    registry.register(plugin.echo)
    registry.validate("echo", {"text": "hi"})
    with pytest.raises(InvalidArguments) as caught:
        registry.validate("echo", {})
    assert caught.value.errors == ["(arguments): 'text' is a required property"]


def test_tools_lists_only_allowed_skills() -> None:
    registry = load_registry(include_builtins=True)
    tools = registry.tools(["order_status", "handoff", "not_registered"])
    assert [t["function"]["name"] for t in tools] == ["handoff", "order_status"]


def test_builtins_declare_their_side_effects_and_needs() -> None:
    by_name = {s.name: s.manifest for s in BUILTIN_SKILLS}
    assert {n for n, m in by_name.items() if m.side_effects} == {"refund", "cancel_order"}
    assert by_name["refund"].secrets == ["shopify_token", "stripe_secret_key"]
    assert by_name["create_ticket"].settings == ["zendesk_url", "zendesk_email"]
    # Handing off needs no ticket system: the inbox takes it, the handoff agent tickets it.
    assert (by_name["handoff"].settings, by_name["handoff"].secrets) == ([], [])
    routes = Routes.of(BUILTIN_SKILLS)
    routed = {r.skill for rs in routes.by_intent.values() for r in rs}
    assert routed == {"order_status", "order_list", "track_shipment", "refund"} | {
        "cancel_order",
        "create_ticket",
    }
    assert routes.side_effects == {"refund", "cancel_order"}
    assert routes.hands_off("human_agent")
