"""`clawdesk kb ingest`: the tenant's knowledge base (logic: `clawdesk.kb`)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn

from clawdesk.settings import app_settings, connection_settings

app = typer.Typer(help="Knowledge-base commands.", no_args_is_help=True)
console = Console(stderr=True)


@app.command("ingest")
def kb_ingest(
    paths: Annotated[
        list[Path], typer.Argument(help="files or folders (md, html, txt, csv, jsonl)")
    ],
    tenant: Annotated[str, typer.Option(help="tenant id")] = "",
) -> None:
    """Make the tenant's knowledge base match PATHS (adds, updates, removes documents)."""
    # deferred: the KB imports Qdrant and sentence-transformers
    from clawdesk.kb.encoders import settings_encoder
    from clawdesk.kb.index import KnowledgeBase, open_qdrant

    settings, conn = app_settings(), connection_settings()
    missing = [str(p) for p in paths if not p.exists()]
    if missing:
        console.print(f"[red]no such file or folder: {', '.join(missing)}[/]")
        raise typer.Exit(2)
    key = conn.qdrant_api_key.get_secret_value() if conn.qdrant_api_key else None
    client = open_qdrant(conn.qdrant_url, settings.data_dir / "qdrant", key)
    kb = KnowledgeBase(client, settings_encoder(settings))
    with Progress(
        TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), console=console
    ) as bar:
        task = bar.add_task("ingesting", total=None)
        report = kb.sync(
            tenant or settings.default_tenant,
            paths,
            lambda done, total: bar.update(task, completed=done, total=total),
        )
    console.print(
        f"added {report.added}, updated {report.updated}, removed {report.removed}, "
        f"unchanged {report.unchanged} documents; {report.chunks} chunks"
    )
