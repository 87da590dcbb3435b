"""`clawdesk schemas export`: the events' JSON Schemas (logic: `schemas`)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console

app = typer.Typer(help="Event schema commands.", no_args_is_help=True)
console = Console(stderr=True)


@app.command("export")
def schemas_export(
    out: Annotated[Path, typer.Argument(help="output folder")] = Path("schemas/json"),
) -> None:
    """Write each event's JSON Schema to OUT."""
    # deferred: the event models are only needed to export them
    from schemas import export_json_schemas

    for path in export_json_schemas(out):
        console.print(str(path))
