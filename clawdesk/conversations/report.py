"""The figures of a conversation evaluation: printed (rich), as JSON, as JUnit XML."""

from __future__ import annotations

import json
import xml.etree.ElementTree as ET
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.markup import escape
from rich.table import Table

from clawdesk.conversations.scoring import ScenarioRun, Slice, Summary, TurnResult

REPLY_SHOWN = 300  # characters of the bot's reply shown with a failing turn


def _pct(rate: float) -> str:
    return f"{rate:.1%}"


def _ms(seconds: float | None) -> str:
    return "n/a" if seconds is None else f"{seconds * 1000:.0f}"


def print_summary(console: Console, summary: Summary, *, failures: bool = True) -> None:
    """The figures, then (unless `failures` is False) every failing turn."""
    console.print(_overall_table(summary))
    console.print(_slices_table("per language", summary.by_language, summary.k))
    if summary.by_tag:
        console.print(_slices_table("per tag", summary.by_tag, summary.k))
    if failures:
        print_failures(console, summary.failing)


def _overall_table(summary: Summary) -> Table:
    o = summary.overall
    table = Table(title="clawdesk eval conversations")
    table.add_column("figure")
    table.add_column("value", justify="right")
    table.add_row("scenarios", str(o.scenarios))
    table.add_row("runs per scenario (k)", str(summary.k))
    table.add_row("scenario runs passed", f"{o.runs.passed} / {o.runs.total} ({_pct(o.runs.rate)})")
    table.add_row("turns passed", f"{o.turns.passed} / {o.turns.total} ({_pct(o.turns.rate)})")
    table.add_row(
        f"pass^{summary.k}", f"{o.pass_k.passed} / {o.pass_k.total} ({_pct(o.pass_k.rate)})"
    )
    table.add_row(
        "reply latency per turn p50 / p99 (ms)",
        f"{_ms(summary.latency_p50_s)} / {_ms(summary.latency_p99_s)}",
    )
    return table


def _slices_table(title: str, slices: dict[str, Slice], k: int) -> Table:
    table = Table(title=title)
    for column in ("", "scenarios", "runs passed", "turns passed", f"pass^{k}"):
        table.add_column(column, justify="left" if not column else "right")
    for name, s in slices.items():
        table.add_row(
            name,
            str(s.scenarios),
            f"{s.runs.passed}/{s.runs.total} {_pct(s.runs.rate)}",
            f"{s.turns.passed}/{s.turns.total} {_pct(s.turns.rate)}",
            f"{s.pass_k.passed}/{s.pass_k.total} {_pct(s.pass_k.rate)}",
        )
    return table


def print_failures(console: Console, runs: list[ScenarioRun]) -> None:
    """Each failing turn: the scenario, what the customer said, each unmet expectation
    (expected vs actual) and the bot's reply. Lines are not wrapped, so a log or a CI
    page shows each on one line."""
    for run in runs:
        where = f"{run.case.file}:{run.case.line}"
        name = escape(run.case.scenario.name)
        console.print(f"\n[bold red]FAIL[/] {name} (run {run.run}, {where})", soft_wrap=True)
        if run.error:
            console.print(f"  [red]error:[/] {escape(run.error)}", soft_wrap=True)
        for turn in run.turns:
            if not turn.passed:
                _print_turn(console, turn)


def _print_turn(console: Console, turn: TurnResult) -> None:
    console.print(f"  turn {turn.index + 1}: [cyan]{escape(turn.outcome.text)}[/]", soft_wrap=True)
    for f in turn.failures:
        failed = f"    ✗ {f.check}: expected {escape(f.expected)}, got {escape(f.actual)}"
        console.print(failed, soft_wrap=True)
    reply = turn.outcome.reply
    shown = "(no reply)" if reply is None else reply[:REPLY_SHOWN].replace("\n", " ⏎ ")
    console.print(f"    bot: {escape(shown)}", soft_wrap=True)


# -- JSON ----------------------------------------------------------------------------


def _slice_dict(s: Slice) -> dict[str, Any]:
    return {
        "scenarios": s.scenarios,
        "runs": s.runs.as_dict(),
        "turns": s.turns.as_dict(),
        "pass_k": s.pass_k.as_dict(),
    }


def _turn_dict(turn: TurnResult) -> dict[str, Any]:
    o = turn.outcome
    return {
        "turn": turn.index + 1,
        "say": o.text,
        "reply": o.reply,
        "intent": o.intent,
        "confidence": o.confidence,
        "language": o.language,
        "skill": o.skill,
        "skill_status": o.skill_status,
        "args": o.args,
        "handoff": o.handoff,
        "sources": list(o.sources),
        "latency_s": o.latency_s,
        "failures": [
            {"check": f.check, "expected": f.expected, "actual": f.actual} for f in turn.failures
        ],
    }


def summary_dict(summary: Summary) -> dict[str, Any]:
    """Every figure and every failing run, JSON-ready."""
    return {
        "k": summary.k,
        "overall": _slice_dict(summary.overall),
        "by_language": {k: _slice_dict(v) for k, v in summary.by_language.items()},
        "by_tag": {k: _slice_dict(v) for k, v in summary.by_tag.items()},
        "latency_s": {"p50": summary.latency_p50_s, "p99": summary.latency_p99_s},
        "failures": [
            {
                "scenario": run.case.scenario.name,
                "file": str(run.case.file),
                "line": run.case.line,
                "run": run.run,
                "conversation_id": run.conversation_id,
                "error": run.error,
                "turns": [_turn_dict(t) for t in run.turns if not t.passed],
            }
            for run in summary.failing
        ],
    }


def write_json(summary: Summary, path: Path) -> None:
    """Write `summary_dict` to `path`."""
    path.write_text(json.dumps(summary_dict(summary), ensure_ascii=False, indent=2) + "\n")


# -- JUnit ---------------------------------------------------------------------------


def junit_xml(summary: Summary) -> ET.ElementTree[ET.Element]:
    """One testcase per scenario (failed if any of its k runs failed)."""
    by_name: dict[str, list[ScenarioRun]] = {}
    for run in summary.runs:
        by_name.setdefault(run.case.scenario.name, []).append(run)
    failed = sum(not all(r.passed for r in rs) for rs in by_name.values())
    suite = ET.Element(
        "testsuite",
        name="clawdesk eval conversations",
        tests=str(len(by_name)),
        failures=str(failed),
        errors="0",
    )
    for name, runs in by_name.items():
        case = runs[0].case
        seconds = sum(t.outcome.latency_s or 0.0 for r in runs for t in r.turns)
        element = ET.SubElement(
            suite,
            "testcase",
            classname=f"{case.file.stem}.{case.scenario.language}",
            name=name,
            file=str(case.file),
            line=str(case.line),
            time=f"{seconds:.3f}",
        )
        bad = [r for r in runs if not r.passed]
        if bad:
            failure = ET.SubElement(
                element, "failure", message=f"{len(bad)} of {len(runs)} runs failed"
            )
            failure.text = "\n".join(_run_text(r) for r in bad)
    return ET.ElementTree(suite)


def _run_text(run: ScenarioRun) -> str:
    lines = [f"run {run.run}" + (f": {run.error}" if run.error else "")]
    for turn in run.turns:
        if turn.passed:
            continue
        lines.append(f"  turn {turn.index + 1}: {turn.outcome.text}")
        lines.extend(f"    {f.check}: expected {f.expected}, got {f.actual}" for f in turn.failures)
        lines.append(f"    bot: {turn.outcome.reply}")
    return "\n".join(lines)


def write_junit(summary: Summary, path: Path) -> None:
    """Write `junit_xml` to `path`."""
    tree = junit_xml(summary)
    ET.indent(tree)
    tree.write(path, encoding="utf-8", xml_declaration=True)
