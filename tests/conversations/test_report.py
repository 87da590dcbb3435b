"""The JSON and JUnit outputs, and the printed failures."""

from __future__ import annotations

import json
import xml.etree.ElementTree as ET
from pathlib import Path

from rich.console import Console

from clawdesk.conversations.report import print_summary, write_json, write_junit
from clawdesk.conversations.scoring import Summary, summarize
from tests.conversations.helpers import case, run


def summary() -> Summary:
    good, bad = case("good", "en", ("kb",)), case("bad", "zh")
    return summarize(
        [run(good, 0, True), run(good, 1, True), run(bad, 0, True), run(bad, 1, False)], k=2
    )


def test_json_holds_every_figure_and_each_failing_turn(tmp_path: Path) -> None:
    path = tmp_path / "out.json"
    write_json(summary(), path)
    data = json.loads(path.read_text())
    assert data["k"] == 2
    assert data["overall"]["runs"] == {"passed": 3, "total": 4, "rate": 0.75}
    assert data["overall"]["pass_k"] == {"passed": 1, "total": 2, "rate": 0.5}
    assert data["by_language"]["zh"]["pass_k"]["passed"] == 0
    assert data["by_tag"]["kb"]["runs"]["rate"] == 1.0
    assert data["latency_s"]["p50"] > 0
    [failure] = data["failures"]
    assert (failure["scenario"], failure["run"], failure["line"]) == ("bad", 1, 3)
    [turn] = failure["turns"]
    assert turn["reply"] == "Hello!" and turn["intent"] == "oos"
    assert turn["failures"] == [{"check": "intent", "expected": "greeting", "actual": "oos"}]


def test_junit_has_one_testcase_per_scenario_failed_by_any_run(tmp_path: Path) -> None:
    path = tmp_path / "out.xml"
    write_junit(summary(), path)
    suite = ET.parse(path).getroot()
    assert (suite.tag, suite.get("tests"), suite.get("failures")) == ("testsuite", "2", "1")
    cases = {c.get("name"): c for c in suite.iter("testcase")}
    assert cases["good"].find("failure") is None
    failure = cases["bad"].find("failure")
    assert failure is not None and failure.get("message") == "1 of 2 runs failed"
    assert "intent: expected greeting, got oos" in (failure.text or "")
    assert "bot: Hello!" in (failure.text or "")


def test_the_printout_names_each_failing_turn_and_the_bots_reply() -> None:
    console = Console(record=True, width=200)
    print_summary(console, summary())
    text = console.export_text()
    assert "3 / 4 (75.0%)" in text and "pass^2" in text
    assert "FAIL bad (run 1" in text
    assert "✗ intent: expected greeting, got oos" in text and "bot: Hello!" in text


def test_failures_can_be_left_out_of_the_printout() -> None:
    console = Console(record=True, width=200)
    print_summary(console, summary(), failures=False)
    assert "FAIL" not in console.export_text()
