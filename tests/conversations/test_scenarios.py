"""The scenario loader: the format as written, and a clear file:line: field for each mistake."""

from __future__ import annotations

from pathlib import Path

import pytest

from clawdesk.conversations.scenarios import ScenarioError, load_file, load_files
from schemas import Channel

DATA = Path(__file__).parents[2] / "clawdesk" / "data" / "conversations"

GOOD = """\
tenant: demo
scenarios:
  - name: order-status-then-where-is-it
    language: en
    tags: [order, follow-up]
    turns:
      - say: ["What's the status of order #1002?", "status of my order 1002 pls"]
        channel: web
        metadata: {}
        expect:
          intent: order_status
          skill: order_status
          args: {order: 1002}
          confirmation: false
          handoff: false
          language: en
          contains_any: ["shipped", "DHL"]
          contains: ["1002"]
          not_contains: ["No."]
          sources: true
          no_reply: false
      - say: where is it now?
        channel: inapp
        metadata: {app.email: mike@example.com}
        expect: {skill: [track_shipment, order_status], sources: [shipping.md]}
  - name: hello
    language: zh
    turns:
      - say: 你好
"""


def write(tmp_path: Path, text: str, name: str = "demo.yaml") -> Path:
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return path


def problems(tmp_path: Path, text: str) -> list[str]:
    path = write(tmp_path, text)
    with pytest.raises(ScenarioError) as err:
        load_file(path)
    return [p.removeprefix(f"{path}:") for p in err.value.problems]


def test_a_good_file_loads_with_defaults_and_variants(tmp_path: Path) -> None:
    cases = load_file(write(tmp_path, GOOD))
    assert [c.scenario.name for c in cases] == ["order-status-then-where-is-it", "hello"]
    assert [c.line for c in cases] == [3, 26]
    first, second = cases[0].scenario.turns
    assert first.text(0) == "What's the status of order #1002?"
    assert first.text(3) == "status of my order 1002 pls"  # runs cycle through variants
    assert first.expect is not None and first.expect.args == {"order": "1002"}
    assert second.say == ["where is it now?"] and second.channel is Channel.INAPP
    assert second.expect is not None and second.expect.skill == ["track_shipment", "order_status"]
    assert second.expect.sources == ["shipping.md"]
    hello = cases[1].scenario.turns[0]
    assert hello.channel is Channel.WEB and hello.expect is None and cases[1].tenant == "demo"


def test_the_shipped_scenario_files_load() -> None:
    files = sorted(DATA.glob("demo_*.yaml"))
    assert files, "no scenario files shipped"
    assert len(load_files(files)) > 0


def test_an_unknown_field_is_named_with_its_line(tmp_path: Path) -> None:
    text = GOOD.replace("          intent: order_status", "          intnet: order_status")
    assert problems(tmp_path, text) == ["11: scenarios[0].turns[0].expect.intnet: unknown field"]


def test_a_missing_field_points_at_its_parent(tmp_path: Path) -> None:
    text = GOOD.replace("    language: zh\n", "")
    assert problems(tmp_path, text) == ["26: scenarios[1].language: missing field"]


def test_a_wrong_value_says_what_is_allowed(tmp_path: Path) -> None:
    text = GOOD.replace("channel: inapp", "channel: sms").replace(
        "language: en\n    tags", "language: fr\n    tags"
    )
    found = problems(tmp_path, text)
    assert found[0] == "4: scenarios[0].language: Input should be 'en' or 'zh'"
    assert found[1].startswith("23: scenarios[0].turns[1].channel: Input should be 'web'")


def test_an_empty_say_and_a_bad_sources_value_are_reported(tmp_path: Path) -> None:
    text = GOOD.replace("      - say: 你好", "      - say: []").replace(
        "sources: true", "sources: 3"
    )
    assert problems(tmp_path, text) == [
        "20: scenarios[0].turns[0].expect.sources: expected true, false or a list of source names",
        "29: scenarios[1].turns[0].say: Value should have at least 1 item after validation, not 0",
    ]


def test_a_duplicate_key_is_an_error_not_silently_the_last(tmp_path: Path) -> None:
    text = GOOD.replace(
        "          handoff: false\n", "          handoff: false\n          handoff: true\n"
    )
    assert problems(tmp_path, text) == ["16: scenarios[0].turns[0].expect.handoff: duplicate key"]


def test_invalid_yaml_gives_its_line(tmp_path: Path) -> None:
    found = problems(tmp_path, "tenant: demo\nscenarios:\n  - name: [a\n    language: en\n")
    assert len(found) == 1 and found[0].startswith("4: invalid YAML: expected ',' or ']'")


def test_an_empty_file_and_a_bad_tenant_are_reported(tmp_path: Path) -> None:
    assert problems(tmp_path, "# nothing\n") == ["1: empty file"]
    assert problems(tmp_path, GOOD.replace("tenant: demo", "tenant: de mo"))[0].startswith(
        "1: tenant: String should match pattern"
    )


def test_scenario_names_are_unique_across_files(tmp_path: Path) -> None:
    one, two = write(tmp_path, GOOD, "one.yaml"), write(tmp_path, GOOD, "two.yaml")
    with pytest.raises(ScenarioError) as err:
        load_files([one, two])
    assert err.value.problems == [
        f"{two}:3: name: duplicate scenario name 'order-status-then-where-is-it' "
        f"(first at {one}:3)",
        f"{two}:26: name: duplicate scenario name 'hello' (first at {one}:26)",
    ]
