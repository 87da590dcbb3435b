"""`clawdesk soak`: the fault-injection soak test (logic: `clawdesk/soak/command.py`)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console

from clawdesk.soak.command import DEFAULT_MODELS_DIR, SoakOptions, run_soak

app = typer.Typer(help="The soak test.")


@app.command("soak")
def soak(
    conversations: Annotated[int, typer.Option(help="conversations (customers)")] = 20,
    messages: Annotated[int, typer.Option(help="messages per conversation")] = 5,
    rate: Annotated[
        float,
        typer.Option(help="new messages/s, all conversations; 0: spread over one fault pass"),
    ] = 0.0,
    minutes: Annotated[float, typer.Option(help="upper bound on the drive")] = 10.0,
    workers: Annotated[int, typer.Option(help="worker processes")] = 2,
    channels: Annotated[str, typer.Option(help="comma-separated")] = "web,inapp,telegram,whatsapp",
    faults: Annotated[
        str, typer.Option(help="comma-separated, in order, cycling; 'all' or 'none'")
    ] = "all",
    fault_every: Annotated[float, typer.Option(help="seconds between faults")] = 20.0,
    postgres_outage: Annotated[float, typer.Option(help="seconds Postgres is down")] = 60.0,
    redis_outage: Annotated[float, typer.Option(help="seconds Redis is down")] = 30.0,
    provider_outage: Annotated[float, typer.Option(help="seconds of 429/5xx/timeouts")] = 20.0,
    llm: Annotated[
        bool, typer.Option(help="replies through a fake LLM (enables its fault)")
    ] = False,
    seed: Annotated[int, typer.Option(help="questions, channels ids, which worker dies")] = 1,
    drain_timeout: Annotated[float, typer.Option(help="seconds to wait for the backlog")] = 300.0,
    models_dir: Annotated[
        Path, typer.Option(help="NLU models kept between runs (the first run trains)")
    ] = DEFAULT_MODELS_DIR,
    json_out: Annotated[Path | None, typer.Option("--json", help="write the figures here")] = None,
    keep: Annotated[bool, typer.Option(help="keep the data dir and logs")] = False,
) -> None:
    """Drive C conversations × M messages across channels through faults (kill -9 a
    worker, the broker, the gateway; stop Postgres, Redis; providers answering 429/5xx
    or timing out), then verify: lost, duplicated, out of order, latency, recovery.
    Exit status 1 on any lost or duplicated reply."""
    # deferred: the driver imports the HTTP clients and the channel connectors
    from clawdesk.soak.driver import CHANNELS

    chosen = [c.strip() for c in channels.split(",") if c.strip()]
    if not chosen or any(c not in CHANNELS for c in chosen):
        raise typer.BadParameter(f"--channels: some of {', '.join(CHANNELS)}")
    asked = [f.strip() for f in faults.split(",") if f.strip()]
    options = SoakOptions(
        conversations=conversations,
        messages=messages,
        rate=rate,
        minutes=minutes,
        workers=workers,
        channels=chosen,
        faults=None if asked == ["all"] else [] if asked == ["none"] else asked,
        fault_every_s=fault_every,
        postgres_outage_s=postgres_outage,
        redis_outage_s=redis_outage,
        provider_outage_s=provider_outage,
        llm=llm,
        seed=seed,
        drain_timeout_s=drain_timeout,
        models_dir=models_dir,
        keep=keep,
    )
    report = run_soak(options, Console(stderr=True))
    if json_out is not None:
        json_out.write_text(report.to_json())
    raise typer.Exit(0 if report.ok else 1)
