"""`clawdesk up|worker|status|exporter|gateway|migrate`: run and watch the system.

These commands sit at the root of `clawdesk` (see the table in `clawdesk/cli/__init__.py`);
the running itself is `clawdesk.runtime` (stack, supervisor) and `clawdesk.ops`.
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
import sys
import time
from typing import Annotated

import typer
from rich.console import Console

from agents import parse_stages
from clawdesk.ops.logs import configure_logging, redact
from clawdesk.settings import app_settings, connection_settings

app = typer.Typer(help="Run and watch the system.")
console = Console(stderr=True)
DEMO_KEY_NAME = "demo (clawdesk up)"


@app.command()
def up(
    workers: Annotated[
        str,
        typer.Option(
            help="a count of single-process workers (every stage, one group), or workers "
            "per stage, one group each: nlu=2,retrieve=1 (other stages get one)"
        ),
    ] = "1",
) -> None:
    """Run the whole system on embedded parts (or configured URLs) until Ctrl-C.

    Every part is supervised: a worker, the gateway or an embedded service that dies is
    started again with backoff, and the others keep running."""
    # deferred: the stack imports the embedded services and the supervisor
    from prometheus_client import start_http_server

    from clawdesk.runtime.stack import Infrastructure, parse_workers, start_stack
    from clawdesk.storage.apikeys import create_key

    try:
        layout = parse_workers(workers)
    except ValueError as err:
        console.print(f"[red]--workers: {err}[/]")
        raise typer.Exit(2) from None
    settings = app_settings()
    configure_logging("WARNING")
    logs = settings.data_dir / "logs"
    logs.mkdir(parents=True, exist_ok=True)
    console.print("[bold]clawdesk[/]: starting broker, Postgres, Redis…")
    infra = Infrastructure(settings.data_dir, connection_settings()).start()
    stopping = False

    def _stop(*_: object) -> None:
        nonlocal stopping
        stopping = True

    # Ctrl-C (SIGINT) and SIGTERM both stop everything. SIGINT gets a handler of its own
    # rather than relying on KeyboardInterrupt: a process started in the background by a
    # non-interactive shell inherits SIGINT as *ignored*, and would never see Ctrl-C.
    signal.signal(signal.SIGTERM, _stop)
    signal.signal(signal.SIGINT, _stop)
    stack = None
    try:
        if settings.supervisor_metrics_port:
            # The supervisor's own metrics: which part is up, how often each restarted.
            start_http_server(settings.supervisor_metrics_port, addr=settings.metrics_host)
        stack = start_stack(
            settings, infra, layout, lambda event: console.print(f"  [yellow]{event}[/]")
        )
        url = f"http://{settings.gateway_host}:{settings.gateway_port}/"
        console.print(f"  broker   {infra.bootstrap_servers}")
        # A configured URL may carry a password: shown redacted.
        console.print(f"  postgres {redact(infra.database_url)}")
        console.print(f"  redis    {redact(infra.redis_url)}")
        console.print(f"  logs     {logs}/")
        console.print(f"[bold green]Chat with the demo shop at {url}[/]  (Ctrl-C stops everything)")
        # Only a key's hash is stored, so each start makes a fresh demo key to show.
        key = create_key(infra.database_url, settings.default_tenant, DEMO_KEY_NAME, replace=True)
        console.print(f"  agent inbox {url}inbox  (API key: {key})")
        console.print("  workers are loading models (the first start also trains the demo NLU)…")
        announced: set[str] = set()
        answering, next_probe = False, 0.0
        while not stopping:
            stack.supervisor.tick()
            ready = set(stack.ready_workers())
            for name in sorted(ready - announced):
                console.print(f"  {name} loaded")
            announced = ready
            # "ready" is the gateway's word: it listens and a worker answers now.
            if time.monotonic() >= next_probe:
                now_answering = stack.gateway_ready()
                if now_answering != answering:
                    console.print(
                        f"[bold green]ready[/]: a message sent now to {url} is answered now"
                        if now_answering
                        else "  [yellow]not ready: no worker answers now[/]"
                    )
                answering = now_answering
                next_probe = time.monotonic() + (2.0 if answering else 0.5)
            time.sleep(0.5)
    except KeyboardInterrupt:
        pass
    finally:
        console.print("stopping…")
        if stack is not None:
            stack.stop()
        else:
            infra.stop()
        console.print("stopped.")


@app.command()
def worker(
    stages: Annotated[
        str, typer.Option(help="comma list of stages (ingest,nlu,retrieve,…) or all")
    ] = "all",
    single_process: Annotated[
        bool,
        typer.Option(help="every stage in this one process and one group <app_id> instead"),
    ] = False,
) -> None:
    """Run workers of the given stages against KAFKA_BOOTSTRAP_SERVERS and DATABASE_URL,
    each stage in its own consumer group (<app_id>-<stage>).

    One stage runs in this process; several run as one supervised process each."""
    faust_argv = [sys.executable, "-m", "faust", "-A", "clawdesk.app", "worker", "-l", "info"]
    if single_process:
        os.environ["CLAWDESK_STAGE"] = ""
        os.execv(sys.executable, faust_argv)

    try:
        names = parse_stages(stages)
    except ValueError as err:
        console.print(f"[red]--stages: {err}[/]")
        raise typer.Exit(2) from None
    if len(names) == 1:
        os.environ["CLAWDESK_STAGE"] = names[0]
        os.execv(sys.executable, faust_argv)
    _supervise_stages(names)


def _supervise_stages(names: list[str]) -> None:
    """Run one worker process per stage until SIGINT/SIGTERM; restart any that dies."""
    # deferred: the stack imports the embedded services and the supervisor
    from clawdesk.runtime.stack import stage_workers
    from clawdesk.runtime.supervisor import ProcessChild, Supervisor

    stopping = False

    def _stop(*_: object) -> None:
        nonlocal stopping
        stopping = True

    signal.signal(signal.SIGTERM, _stop)
    signal.signal(signal.SIGINT, _stop)
    supervisor = Supervisor(on_event=lambda event: console.print(f"  [yellow]{event}[/]"))
    settings = app_settings()
    children = stage_workers(settings, dict.fromkeys(names, 1), dict)
    for name, child in zip(names, children, strict=True):
        supervisor.add(child)
        console.print(f"  {child.name}: consumer group {settings.worker_group(name)}")
    try:
        while not stopping:
            supervisor.tick()
            time.sleep(0.5)
    finally:
        supervisor.stop(only=ProcessChild)


@app.command()
def status(
    as_json: Annotated[bool, typer.Option("--json", help="print JSON instead of a table")] = False,
    interval: Annotated[float, typer.Option(help="seconds between the two looks (rates)")] = 2.0,
) -> None:
    """Each stage's consumer group: members, assignments, lag and rates, from the broker."""
    # deferred: the group reader imports aiokafka's admin client
    from clawdesk.ops.status import observe, table

    conn = connection_settings()
    if not conn.kafka_bootstrap_servers:
        console.print("[red]set KAFKA_BOOTSTRAP_SERVERS (the broker `clawdesk up` printed)[/]")
        raise typer.Exit(2)
    rows = asyncio.run(observe(conn.kafka_bootstrap_servers, app_settings(), interval))
    if as_json:
        typer.echo(json.dumps(rows, indent=2, default=str))
    else:
        # Piped or redirected, rich would wrap at 80 columns: one member per line reads better.
        Console(width=None if sys.stdout.isatty() else 200).print(table(rows))


@app.command()
def exporter(
    port: Annotated[int, typer.Option(help="port of /metrics")] = 9470,
    host: Annotated[str, typer.Option(help="address to listen on")] = "127.0.0.1",
) -> None:
    """Export every stage group's lag and members (read from the broker) to Prometheus."""
    # deferred: the exporter imports aiokafka's admin client
    from prometheus_client import start_http_server

    from clawdesk.ops.exporter import export_forever

    conn = connection_settings()
    if not conn.kafka_bootstrap_servers:
        console.print("[red]set KAFKA_BOOTSTRAP_SERVERS[/]")
        raise typer.Exit(2)
    configure_logging(app_settings().log_level)
    start_http_server(port, addr=host)
    console.print(f"lag exporter on http://{host}:{port}/metrics")
    try:
        asyncio.run(export_forever(conn.kafka_bootstrap_servers, app_settings()))
    except KeyboardInterrupt:
        pass


@app.command()
def gateway() -> None:
    """Run the HTTP gateway (webhooks, web chat page, APIs)."""
    # deferred: the gateway imports FastAPI, uvicorn and every channel
    from clawdesk.gateway.server import serve
    from clawdesk.ops import tracing

    settings, conn = app_settings(), connection_settings()
    configure_logging(settings.log_level)
    tracing.setup(settings, "gateway")
    if not conn.kafka_bootstrap_servers or not conn.database_url:
        console.print("[red]set KAFKA_BOOTSTRAP_SERVERS and DATABASE_URL (or use `clawdesk up`)[/]")
        raise typer.Exit(2)
    asyncio.run(serve(settings, conn.kafka_bootstrap_servers, conn.database_url))


@app.command()
def migrate() -> None:
    """Apply pending Postgres migrations to DATABASE_URL."""
    # deferred: the migrations import psycopg
    from clawdesk.storage.db import apply_migrations

    url = connection_settings().database_url
    if not url:
        console.print("[red]DATABASE_URL is not set[/]")
        raise typer.Exit(2)
    applied = apply_migrations(url)
    console.print(f"applied: {', '.join(applied) or 'nothing (up to date)'}")
