"""`clawdesk export conversations|decisions|replay RUN` (logic: `clawdesk/replay/export.py`)."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console

from clawdesk.replay.export import Format, fetch, since_time, write
from clawdesk.settings import connection_settings

app = typer.Typer(help="Export conversations, decisions or a replay run's results.")
console = Console(stderr=True)


def _run(
    dataset: str,
    out: Path,
    fmt: Format,
    since: str | None,
    until: str | None,
    mask: bool,
    run: str | None = None,
) -> None:
    """Fetch one dataset and write it, or exit 2 with the reason."""
    url = connection_settings().database_url
    if not url:
        console.print("[red]DATABASE_URL is not set[/]")
        raise typer.Exit(2)
    end = since_time(until) if until else datetime.now(UTC)
    try:
        rows, column = fetch(url, dataset, since_time(since), end, run)
    except Exception as err:  # an unknown run, a bad time: said plainly
        console.print(f"[red]{err}[/]")
        raise typer.Exit(2) from err
    files = write(rows, column, out, fmt, mask=mask)
    console.print(f"{len(rows)} rows in {len(files)} file(s) under {out}/")


OutOpt = Annotated[Path, typer.Option("--out", help="output folder")]
FormatOpt = Annotated[Format, typer.Option("--format", help="file format")]
SinceOpt = Annotated[str | None, typer.Option(help="ISO time (inclusive)")]
UntilOpt = Annotated[str | None, typer.Option(help="ISO time (exclusive); default now")]
MaskOpt = Annotated[bool, typer.Option(help="pseudonymise e-mails, phones, customer ids")]


@app.command("conversations")
def export_conversations(
    out: OutOpt = Path("export/conversations"),
    fmt: FormatOpt = Format.PARQUET,
    since: SinceOpt = None,
    until: UntilOpt = None,
    mask: MaskOpt = False,
) -> None:
    """Every stored message (customer, bot and agent) with its conversation."""
    _run("conversations", out, fmt, since, until, mask)


@app.command("decisions")
def export_decisions(
    out: OutOpt = Path("export/decisions"),
    fmt: FormatOpt = Format.PARQUET,
    since: SinceOpt = None,
    until: UntilOpt = None,
    mask: MaskOpt = False,
) -> None:
    """Production's decision for each message (intent, KB, skill, reply, handoff)."""
    _run("decisions", out, fmt, since, until, mask)


@app.command("replay")
def export_replay(
    run: Annotated[str, typer.Argument(help="the replay run")],
    out: Annotated[Path | None, typer.Option("--out", help="default export/replay-RUN")] = None,
    fmt: FormatOpt = Format.PARQUET,
    since: SinceOpt = None,
    until: UntilOpt = None,
    mask: MaskOpt = False,
) -> None:
    """A replay run's decisions (the same columns as `decisions`, plus `run`)."""
    _run("replay", out or Path(f"export/replay-{run}"), fmt, since, until, mask, run)
