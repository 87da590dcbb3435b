"""`clawdesk replay start|resume|list|status|stop|delete|diff` (logic: `clawdesk.replay`)."""

from __future__ import annotations

import json
import signal
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    ProgressColumn,
    Task,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)
from rich.table import Table
from rich.text import Text

from clawdesk.replay import driver, runs
from clawdesk.replay.candidate import BadCandidate, parse
from clawdesk.replay.runs import Run, RunError
from clawdesk.replay.shadow import Infra
from clawdesk.replay.source import (
    EVERYTHING,
    BadSource,
    FileSource,
    Selection,
    TopicSource,
    parse_offsets,
)
from clawdesk.settings import app_settings, connection_settings
from topics import inbound_spec

app = typer.Typer(help="Replay stored traffic through a candidate version, in shadow.")
console = Console(stderr=True)


class RateColumn(ProgressColumn):
    """Messages per second, as the progress bar measured them."""

    def render(self, task: Task) -> Text:
        """The task's speed."""
        return Text(f"{task.speed or 0.0:.1f} msgs/s", style="cyan")


@contextmanager
def replay_context(stall_s: float = driver.DEFAULT_STALL_S) -> Iterator[driver.Replay]:
    """Production's parts from the environment; a private embedded broker when none is
    configured (a replay reads Postgres and needs a broker only for its own topics)."""
    conn, settings = connection_settings(), app_settings()
    if not conn.database_url:
        console.print(
            "[red]DATABASE_URL is not set[/]: point it at production's Postgres"
            " (`clawdesk up` prints it)"
        )
        raise typer.Exit(2)
    bootstrap, broker = conn.kafka_bootstrap_servers, None
    if not bootstrap:
        # deferred: the embedded broker is only needed without KAFKA_BOOTSTRAP_SERVERS
        from clawdesk.runtime.broker import EmbeddedBroker

        log = settings.data_dir / "replay" / "tansu.log"
        log.parent.mkdir(parents=True, exist_ok=True)
        broker = EmbeddedBroker(log_path=log).start()
        bootstrap = broker.bootstrap_servers
    try:
        infra = Infra(bootstrap, conn.database_url, conn.redis_url)
        yield driver.Replay(infra, settings, stall_s=stall_s)
    finally:
        if broker is not None:
            broker.stop()


def _fail(err: Exception) -> typer.Exit:
    console.print(f"[red]{err}[/]")
    return typer.Exit(2)


def _when(text: str | None, default: datetime) -> datetime:
    if not text:
        return default
    try:
        at = datetime.fromisoformat(text)
    except ValueError as err:
        raise typer.BadParameter(f"not an ISO time: {text!r}") from err
    return at if at.tzinfo else at.replace(tzinfo=UTC)


def _run_with_progress(work: Any, label: str) -> Run:
    """Run `work(on_progress)` under a progress bar; SIGTERM stops it like Ctrl-C."""

    def stop(*_: object) -> None:
        raise driver.Stopped()

    previous = signal.signal(signal.SIGTERM, stop)
    columns = (
        TextColumn("[bold]{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        RateColumn(),
        TimeElapsedColumn(),
        TextColumn("ETA"),
        TimeRemainingColumn(),
    )
    try:
        with Progress(*columns, console=console) as progress:
            task = progress.add_task(label, total=None)

            def on_progress(done: int, total: int) -> None:
                progress.update(task, completed=done, total=total)

            return work(on_progress)
    finally:
        signal.signal(signal.SIGTERM, previous)


def _report(run: Run) -> None:
    colour = {"finished": "green", "running": "yellow"}.get(run.status, "red")
    console.print(f"run [bold]{run.name}[/]: [{colour}]{run.status}[/] {run.error}".rstrip())
    if run.status != "finished":
        console.print(f"  resume with: clawdesk replay resume {run.name}")
    else:
        console.print(f"  compare with: clawdesk replay diff {run.name}")


@app.command("start")
def start(
    candidate: Annotated[
        str, typer.Option(help="what differs: key=value,… (AppSettings fields) or a YAML file")
    ] = "production",
    source: Annotated[
        str,
        typer.Option(
            "--from", help="postgres, topic (the broker's), or a JSON-lines file of inbound events"
        ),
    ] = "postgres",
    topic: Annotated[
        str | None, typer.Option(help="with --from topic: the topic; default the inbound one")
    ] = None,
    offsets: Annotated[
        str | None,
        typer.Option(help="with --from topic: PARTITION:START-END,… (END exclusive)"),
    ] = None,
    since: Annotated[str | None, typer.Option(help="ISO time; default 24 h ago")] = None,
    until: Annotated[str | None, typer.Option(help="ISO time; default now")] = None,
    tenant: Annotated[str | None, typer.Option(help="only this tenant")] = None,
    channel: Annotated[str | None, typer.Option(help="only this channel")] = None,
    name: Annotated[str | None, typer.Option(help="run name [a-z0-9_]; default r<time>")] = None,
    stall_timeout: Annotated[
        float, typer.Option(help="give up after this long without a new decision (s)")
    ] = driver.DEFAULT_STALL_S,
) -> None:
    """Replay customer messages (stored in Postgres, held by a topic, or in a file)
    through the candidate, in shadow: nothing is sent, no side effect runs, results go
    to the run's own schema."""
    now = datetime.now(UTC)
    try:
        chosen = _source(source, topic, offsets, (since, until, tenant, channel), now)
    except BadSource as err:
        raise typer.BadParameter(str(err)) from err
    try:
        spec = parse(candidate)
        run_name = runs.check_name(name or now.strftime("r%Y%m%d_%H%M%S"))
    except (BadCandidate, RunError) as err:
        raise _fail(err) from err
    console.print(f"replay [bold]{run_name}[/]: candidate {spec.describe()}")
    with replay_context(stall_timeout) as replay:
        try:
            run = _run_with_progress(
                lambda p: driver.start(replay, run_name, chosen, spec, p), "replaying"
            )
        except (RunError, BadSource) as err:
            raise _fail(err) from err
    _report(run)
    if run.status != "finished":
        raise typer.Exit(1)


def _source(
    source: str,
    topic: str | None,
    offsets: str | None,
    narrowing: tuple[str | None, str | None, str | None, str | None],
    now: datetime,
) -> Selection | FileSource | TopicSource:
    """The source `--from` names, narrowed by time, tenant and channel."""
    since, until, tenant, channel = narrowing
    if source != "topic" and (topic or offsets):
        raise BadSource("--topic and --offsets go with --from topic")
    if source == "postgres":
        return Selection(
            _when(since, now - timedelta(days=1)), _when(until, now), tenant or None, channel
        )
    # A topic or a file: every event in it unless narrowed.
    window = Selection(
        _when(since, EVERYTHING.since), _when(until, EVERYTHING.until), tenant, channel
    )
    if source == "topic":
        bootstrap = connection_settings().kafka_bootstrap_servers
        if not bootstrap:
            raise BadSource("--from topic: KAFKA_BOOTSTRAP_SERVERS is not set")
        name = topic or inbound_spec.name(app_settings())
        return TopicSource(bootstrap, name, window, parse_offsets(offsets or ""))
    if Path(source).is_file():
        return FileSource(Path(source), window)
    raise BadSource(f"--from: postgres, topic or an existing file, not {source!r}")


@app.command("resume")
def resume(name: Annotated[str, typer.Argument(help="the run")]) -> None:
    """Finish a run that was stopped or crashed (its unfinished conversations again)."""
    with replay_context() as replay:
        try:
            run = _run_with_progress(lambda p: driver.resume(replay, name, p), "resuming")
        except RunError as err:
            raise _fail(err) from err
    _report(run)
    if run.status != "finished":
        raise typer.Exit(1)


def _row(run: Run, url: str) -> dict[str, Any]:
    try:
        decided, dead = runs.settled(url, run.schema_name)
    except Exception:  # a schema dropped by hand: the row still lists
        decided, dead = 0, 0
    return {
        "name": run.name,
        "status": run.status,
        "decided": decided,
        "dead_letters": dead,
        "total": run.total,
        "attempt": run.attempt,
        "candidate": run.candidate,
        "source": run.source,
        "schema": run.schema_name,
        "topic_prefix": run.topic_prefix,
        "started_at": run.started_at.isoformat(),
        "finished_at": run.finished_at.isoformat() if run.finished_at else None,
        "error": run.error,
    }


def _url() -> str:
    url = connection_settings().database_url
    if not url:
        raise _fail(RunError("DATABASE_URL is not set"))
    return url


@app.command("list")
def list_runs(as_json: Annotated[bool, typer.Option("--json")] = False) -> None:
    """Every replay run, newest first."""
    url = _url()
    rows = [_row(r, url) for r in runs.all_runs(url)]
    if as_json:
        typer.echo(json.dumps(rows, indent=2))
        return
    table = Table(title="replay runs")
    for col in ("name", "status", "decided/total", "candidate", "started"):
        table.add_column(col)
    for r in rows:
        cand = ", ".join(f"{k}={v}" for k, v in sorted(r["candidate"].items())) or "production"
        table.add_row(
            r["name"],
            r["status"],
            f"{r['decided'] + r['dead_letters']}/{r['total']}",
            cand,
            r["started_at"][:19],
        )
    Console().print(table)


@app.command("status")
def status(
    name: Annotated[str, typer.Argument(help="the run")],
    as_json: Annotated[bool, typer.Option("--json")] = False,
) -> None:
    """One run's state and progress."""
    url = _url()
    try:
        row = _row(runs.get(url, name), url)
    except RunError as err:
        raise _fail(err) from err
    if as_json:
        typer.echo(json.dumps(row, indent=2))
        return
    for key, value in row.items():
        Console().print(f"[bold]{key:>13}[/] {value}")


@app.command("diff")
def diff(
    name: Annotated[str, typer.Argument(help="the run")],
    against: Annotated[str, typer.Option(help="production, or another run's name")] = "production",
    as_json: Annotated[bool, typer.Option("--json", help="machine-readable, on stdout")] = False,
    html: Annotated[Path | None, typer.Option(help="also write an HTML report here")] = None,
    top: Annotated[int, typer.Option(help="changed examples shown")] = 10,
) -> None:
    """What changed between the run and production (or another run): per message and
    conversation, by intent, language and channel, intent confusion, outcome rates."""
    # deferred: the diff and its HTML report are only needed here
    from clawdesk.replay.diff import run_report
    from clawdesk.replay.report import print_report, render_html

    try:
        report = run_report(_url(), name, against)
    except RunError as err:
        raise _fail(err) from err
    if html is not None:
        html.write_text(render_html(report, top=max(top, 50)))
        console.print(f"HTML report: {html}")
    if as_json:
        typer.echo(json.dumps(report.to_json(top), ensure_ascii=False, indent=2, default=str))
    else:
        print_report(report, Console(), top)


@app.command("stop")
def stop(name: Annotated[str, typer.Argument(help="the run")]) -> None:
    """Stop a running run (its driver and worker); `resume` finishes it later."""
    replay = driver.Replay(Infra("", _url()), app_settings())
    try:
        run = driver.stop(replay, name)
    except RunError as err:
        raise _fail(err) from err
    _report(run)


@app.command("delete")
def delete(name: Annotated[str, typer.Argument(help="the run")]) -> None:
    """Delete a run: its schema (results), registry row and local folder."""
    replay = driver.Replay(Infra("", _url()), app_settings())
    try:
        driver.delete(replay, name)
    except RunError as err:
        raise _fail(err) from err
    console.print(f"deleted run {name}")
