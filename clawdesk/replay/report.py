"""A diff report a person can read: rich tables on the terminal, or one HTML page."""

from __future__ import annotations

import html
import json
from typing import Any

from rich.console import Console
from rich.table import Table

from clawdesk.replay.diff import Group, MessageDiff, Report


def _pct(rate: float) -> str:
    return f"{rate * 100:.1f} %"


def print_report(report: Report, console: Console, top: int = 10) -> None:
    """The summary, the group tables, the confusion table, outcomes and top examples."""
    console.print(
        f"[bold]{report.candidate}[/] against [bold]{report.baseline}[/]: "
        f"{len(report.changed)} of {report.messages} messages changed "
        f"({_pct(report.changed_rate)}), {report.changed_conversations} of "
        f"{report.conversations} conversations"
    )
    if report.by_field:
        fields = ", ".join(f"{k} {v}" for k, v in report.by_field.items())
        console.print(f"changed fields: {fields}")
    for title, groups in (
        ("by intent (baseline)", report.by_intent),
        ("by language", report.by_language),
        ("by channel", report.by_channel),
    ):
        console.print(_group_table(title, groups))
    console.print(_confusion_table(report))
    outcomes = Table(title="outcomes")
    for col in ("outcome", report.baseline, report.candidate):
        outcomes.add_column(col, justify="right" if col != "outcome" else "left")
    n = report.messages or 1
    for name, (base, cand) in sorted(report.outcomes.items()):
        outcomes.add_row(name, f"{base} ({_pct(base / n)})", f"{cand} ({_pct(cand / n)})")
    console.print(outcomes)
    examples = Table(title=f"top {top} changed messages")
    for col in ("message", "changed", report.baseline, report.candidate):
        examples.add_column(col, overflow="fold")
    for d in report.top(top):
        examples.add_row(
            d.text[:80] or d.message_id,
            ", ".join(d.changed),
            _side(d.base, d.changed),
            _side(d.candidate, d.changed),
        )
    console.print(examples)


def _group_table(title: str, groups: dict[str, Group]) -> Table:
    table = Table(title=title)
    for col in ("", "messages", "changed", "changed %"):
        table.add_column(col, justify="left" if not col else "right")
    for key, g in sorted(groups.items(), key=lambda kv: -kv[1].messages):
        table.add_row(key, str(g.messages), str(g.changed), _pct(g.rate))
    return table


def _confusion_table(report: Report) -> Table:
    table = Table(title=f"intents: {report.baseline} (rows) → {report.candidate} (columns)")
    columns = sorted({c for _, c in report.confusion})
    rows = sorted({b for b, _ in report.confusion})
    table.add_column("")
    for c in columns:
        table.add_column(c, justify="right")
    for b in rows:
        table.add_row(b, *(str(report.confusion.get((b, c), "")) for c in columns))
    return table


def _side(values: dict[str, Any], changed: list[str]) -> str:
    parts = []
    for f in changed:
        value = values.get(f)
        text = json.dumps(value, ensure_ascii=False) if isinstance(value, dict) else str(value)
        parts.append(f"{f}: {text[:160]}")
    return "\n".join(parts)


def render_html(report: Report, top: int = 50) -> str:
    """The report as one self-contained HTML page."""
    e = html.escape
    n = report.messages or 1

    def groups(title: str, table: dict[str, Group]) -> str:
        rows = "".join(
            f"<tr><td>{e(k)}</td><td>{g.messages}</td><td>{g.changed}</td>"
            f"<td>{_pct(g.rate)}</td></tr>"
            for k, g in sorted(table.items(), key=lambda kv: -kv[1].messages)
        )
        return (
            f"<h2>{e(title)}</h2><table><tr><th></th><th>messages</th><th>changed</th>"
            f"<th>changed %</th></tr>{rows}</table>"
        )

    columns = sorted({c for _, c in report.confusion})
    confusion = "".join(
        f"<tr><th>{e(b)}</th>"
        + "".join(f"<td>{report.confusion.get((b, c), '')}</td>" for c in columns)
        + "</tr>"
        for b in sorted({b for b, _ in report.confusion})
    )
    outcomes = "".join(
        f"<tr><td>{e(k)}</td><td>{b} ({_pct(b / n)})</td><td>{c} ({_pct(c / n)})</td></tr>"
        for k, (b, c) in sorted(report.outcomes.items())
    )
    examples = "".join(_example_html(d) for d in report.top(top))
    head = "".join(f"<th>{e(c)}</th>" for c in columns)
    return f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8">
<title>clawdesk replay: {e(report.candidate)} against {e(report.baseline)}</title>
<style>
body {{ font: 14px/1.4 system-ui, sans-serif; margin: 2em; color: #222; }}
table {{ border-collapse: collapse; margin: 0 0 1.5em; }}
td, th {{ border: 1px solid #ccc; padding: 4px 8px; text-align: right; vertical-align: top; }}
td:first-child, th:first-child {{ text-align: left; }}
.ex td {{ text-align: left; white-space: pre-wrap; max-width: 40em; }}
.summary {{ font-size: 1.2em; }}
</style></head><body>
<h1>{e(report.candidate)} against {e(report.baseline)}</h1>
<p class="summary">{len(report.changed)} of {report.messages} messages changed
({_pct(report.changed_rate)}); {report.changed_conversations} of {report.conversations}
conversations.</p>
<p>Changed fields: {e(", ".join(f"{k} {v}" for k, v in report.by_field.items()) or "none")}</p>
{groups("By intent (baseline)", report.by_intent)}
{groups("By language", report.by_language)}
{groups("By channel", report.by_channel)}
<h2>Intents: {e(report.baseline)} (rows) → {e(report.candidate)} (columns)</h2>
<table><tr><th></th>{head}</tr>{confusion}</table>
<h2>Outcomes</h2>
<table><tr><th>outcome</th><th>{e(report.baseline)}</th><th>{e(report.candidate)}</th></tr>
{outcomes}</table>
<h2>The {min(top, len(report.changed))} messages that changed most</h2>
<table class="ex"><tr><th>message</th><th>changed</th><th>{e(report.baseline)}</th>
<th>{e(report.candidate)}</th></tr>{examples}</table>
</body></html>
"""


def _example_html(d: MessageDiff) -> str:
    e = html.escape
    return (
        f"<tr><td>{e(d.text or d.message_id)}<br><small>{e(d.conversation_id)}</small></td>"
        f"<td>{e(', '.join(d.changed))}</td><td>{e(_side(d.base, d.changed))}</td>"
        f"<td>{e(_side(d.candidate, d.changed))}</td></tr>"
    )
