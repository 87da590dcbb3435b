"""The `clawdesk` command line."""

from __future__ import annotations

import asyncio
import os
import signal
import sys
import time
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn
from rich.table import Table

from clawdesk.cli.eval_intents import FinetuneSettings, Multilingual
from clawdesk.ops.logs import configure_logging, redact
from clawdesk.settings import app_settings, connection_settings

cli = typer.Typer(
    help="clawdesk: 7x24 AI customer service on a Kafka pipeline.", no_args_is_help=True
)
kb_cli = typer.Typer(help="Knowledge-base commands.", no_args_is_help=True)
schemas_cli = typer.Typer(help="Event schema commands.", no_args_is_help=True)
eval_cli = typer.Typer(help="Evaluate the NLU and retrieval.", no_args_is_help=True)
cli.add_typer(kb_cli, name="kb")
cli.add_typer(schemas_cli, name="schemas")
cli.add_typer(eval_cli, name="eval")
nlu_cli = typer.Typer(help="Train and list per-tenant intent models.", no_args_is_help=True)
cli.add_typer(nlu_cli, name="nlu")
console = Console(stderr=True)
DEMO_KEY_NAME = "demo (clawdesk up)"


@cli.command()
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


@cli.command()
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
    from agents import parse_stages

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


@cli.command()
def status(
    as_json: Annotated[bool, typer.Option("--json", help="print JSON instead of a table")] = False,
    interval: Annotated[float, typer.Option(help="seconds between the two looks (rates)")] = 2.0,
) -> None:
    """Each stage's consumer group: members, assignments, lag and rates, from the broker."""
    import json

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


@cli.command()
def exporter(
    port: Annotated[int, typer.Option(help="port of /metrics")] = 9470,
    host: Annotated[str, typer.Option(help="address to listen on")] = "127.0.0.1",
) -> None:
    """Export every stage group's lag and members (read from the broker) to Prometheus."""
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


@cli.command()
def gateway() -> None:
    """Run the HTTP gateway (webhooks, web chat page, APIs)."""
    from clawdesk.gateway.server import serve
    from clawdesk.ops import tracing

    settings, conn = app_settings(), connection_settings()
    configure_logging(settings.log_level)
    tracing.setup(settings, "gateway")
    if not conn.kafka_bootstrap_servers or not conn.database_url:
        console.print("[red]set KAFKA_BOOTSTRAP_SERVERS and DATABASE_URL (or use `clawdesk up`)[/]")
        raise typer.Exit(2)
    asyncio.run(serve(settings, conn.kafka_bootstrap_servers, conn.database_url))


@cli.command()
def migrate() -> None:
    """Apply pending Postgres migrations to DATABASE_URL."""
    from clawdesk.storage.db import apply_migrations

    url = connection_settings().database_url
    if not url:
        console.print("[red]DATABASE_URL is not set[/]")
        raise typer.Exit(2)
    applied = apply_migrations(url)
    console.print(f"applied: {', '.join(applied) or 'nothing (up to date)'}")


@kb_cli.command("ingest")
def kb_ingest(
    paths: Annotated[
        list[Path], typer.Argument(help="files or folders (md, html, txt, csv, jsonl)")
    ],
    tenant: Annotated[str, typer.Option(help="tenant id")] = "",
) -> None:
    """Make the tenant's knowledge base match PATHS (adds, updates, removes documents)."""
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


@nlu_cli.command("train")
def nlu_train(
    intents: Annotated[Path, typer.Argument(help="intents file: JSONL text/intent or YAML")],
    tenant: Annotated[str, typer.Option(help="tenant id")] = "",
    finetune: Annotated[bool, typer.Option(help="contrastively fine-tune the encoder")] = False,
    encoder: Annotated[
        str | None,
        typer.Option(
            help="sentence encoder: packaged:all-MiniLM-L6-v2, packaged:all-mpnet-base-v2 "
            "(more accurate, ~7x the compute) or a directory; default CLAWDESK_EMBEDDING_MODEL",
        ),
    ] = None,
    finetune_set: FinetuneSettings = None,
    multilingual: Multilingual = "auto",
) -> None:
    """Train a new version of the tenant's intent model and store it (the nlu stage loads
    the latest, or CLAWDESK_NLU_MODEL_VERSION)."""
    from clawdesk.cli.eval_intents import apply_finetune_settings, multilingual_setting
    from clawdesk.kb.packaged_models import PackagedModelError
    from clawdesk.nlu import ClassifierConfig, fit_intent_model, load_examples
    from clawdesk.nlu.versions import save_model

    settings = app_settings()
    if not intents.is_file():
        console.print(f"[red]no such file: {intents}[/]")
        raise typer.Exit(2)
    if finetune_set and not finetune:
        console.print("[red]--finetune-set needs --finetune[/]")
        raise typer.Exit(2)
    chosen = settings.embedding_model if encoder is None else encoder
    config = ClassifierConfig(
        finetune=finetune, encoder=chosen, multilingual=multilingual_setting(multilingual, console)
    )
    apply_finetune_settings(config, finetune_set, console)
    examples = load_examples(intents)
    try:
        clf = fit_intent_model(examples, config)
    except PackagedModelError as exc:
        console.print(f"[red]{exc}[/]")
        raise typer.Exit(2) from exc
    version = save_model(settings.model_root, tenant or settings.default_tenant, clf)
    console.print(
        f"trained on {len(examples)} examples: version {version}; multilingual: "
        f"{clf.config.multilingual or 'none'}"
    )


@nlu_cli.command("versions")
def nlu_versions(tenant: Annotated[str, typer.Option(help="tenant id")] = "") -> None:
    """List the stored versions of the tenant's intent model."""
    from clawdesk.nlu.versions import list_versions

    settings = app_settings()
    for version in list_versions(settings.model_root, tenant or settings.default_tenant):
        console.print(version)


@nlu_cli.command("prune")
def nlu_prune(
    keep: Annotated[int, typer.Option(min=1, help="newest versions to keep")] = 3,
    tenant: Annotated[str, typer.Option(help="tenant id")] = "",
    dry_run: Annotated[bool, typer.Option(help="only list what would be removed")] = False,
) -> None:
    """Remove old versions of the tenant's intent model, keeping the newest --keep and
    the one CLAWDESK_NLU_MODEL_VERSION pins (a fine-tuned version holds its own encoder,
    ~90 MB with MiniLM, ~420 MB with mpnet)."""
    from clawdesk.nlu.versions import prune_plan, remove_versions, version_bytes

    settings = app_settings()
    tenant = tenant or settings.default_tenant
    pinned = settings.nlu_model_version or None
    try:
        doomed = prune_plan(settings.model_root, tenant, keep=keep, pinned=pinned)
    except ValueError as exc:  # a bad tenant id
        console.print(f"[red]{exc}[/]")
        raise typer.Exit(2) from exc
    try:
        sizes = {v: version_bytes(settings.model_root, tenant, v) for v in doomed}
        if not dry_run:
            doomed = remove_versions(settings.model_root, tenant, doomed)
    except OSError as exc:  # e.g. a prune running at the same time, or no permission
        console.print(f"[red]could not prune {tenant!r}: {exc}[/]")
        raise typer.Exit(1) from exc
    verb = "would remove" if dry_run else "removed"
    for version in doomed:
        console.print(f"{verb} {version} ({sizes[version] / 1e6:.1f} MB)")
    console.print(
        f"{verb} {len(doomed)} version(s) of {tenant!r}, "
        f"{sum(sizes[v] for v in doomed) / 1e6:.1f} MB"
        + (f"; {pinned} is pinned and kept" if pinned else "")
    )


@schemas_cli.command("export")
def schemas_export(
    out: Annotated[Path, typer.Argument(help="output folder")] = Path("schemas/json"),
) -> None:
    """Write each event's JSON Schema to OUT."""
    from schemas import export_json_schemas

    for path in export_json_schemas(out):
        console.print(str(path))


bench_cli = typer.Typer(help="Benchmarks: the pipeline (default), `webhooks` or `reply`.")
cli.add_typer(bench_cli, name="bench")


@bench_cli.callback(invoke_without_command=True)
def bench(
    ctx: typer.Context,
    n: Annotated[int, typer.Option(help="unique questions to push")] = 500,
    embed_n: Annotated[int, typer.Option(help="sentences for the raw embedding run")] = 2000,
    repeat: Annotated[float, typer.Option(help="share of repeated questions, 0..1")] = 0.0,
    workers: Annotated[
        str,
        typer.Option(
            help="a stage (the bottleneck): one worker per stage, then two of this one, on a "
            "private embedded system; prints msgs/s, p99 and the scaling ratio"
        ),
    ] = "",
) -> None:
    """Push N questions through the running pipeline; print msgs/s, latency percentiles,
    raw batched embedding throughput and their ratio. `bench webhooks`: the gateway's
    webhook acknowledgement latency under load. `bench reply`: reply-composition latency,
    offline and through an LLM endpoint."""
    if ctx.invoked_subcommand is not None:
        return
    if workers:
        from clawdesk.bench.scaling import run_scaling

        try:
            run_scaling(workers, n, console)
        except ValueError as err:
            console.print(f"[red]--workers: {err}[/]")
            raise typer.Exit(2) from None
        return
    from clawdesk.bench.pipeline import run_bench

    run_bench(n=n, embed_n=embed_n, repeat=repeat, console=console)


def _register_channel_commands() -> None:
    """`clawdesk poll …` and `clawdesk bench webhooks` live with the channel code."""
    from clawdesk.bench.webhooks import bench_webhooks
    from connectors.poll import poll_cli

    cli.add_typer(poll_cli, name="poll")
    bench_cli.command("webhooks")(bench_webhooks)


_register_channel_commands()


def _register_reply_bench() -> None:
    """`clawdesk bench reply` lives with the LLM code."""
    from clawdesk.bench.reply import bench_reply

    bench_cli.command("reply")(bench_reply)


_register_reply_bench()


def _register_startup_bench() -> None:
    """`clawdesk bench startup` lives with the start-up timing code."""
    from clawdesk.bench.startup import bench_startup

    bench_cli.command("startup")(bench_startup)


_register_startup_bench()


@eval_cli.command("retrieval")
def eval_retrieval(
    questions: Annotated[
        Path, typer.Option(help="JSONL: question, lang, expected_doc, expected_section")
    ] = Path(""),
    kb_path: Annotated[list[Path] | None, typer.Option("--kb", help="KB files/folders")] = None,
) -> None:
    """Recall@1/@5 and MRR of hybrid retrieval on a question set (default: the demo KB's)."""
    import tempfile

    from clawdesk.kb.answerability import is_relevant
    from clawdesk.kb.encoders import settings_encoder
    from clawdesk.kb.index import KnowledgeBase, open_qdrant
    from clawdesk.kb.retrieval_eval import evaluate_retrieval
    from clawdesk.services import packaged_data

    settings = app_settings()
    questions = (
        questions if str(questions) not in ("", ".") else packaged_data("kb_questions.jsonl")
    )
    with tempfile.TemporaryDirectory() as tmp:
        kb = KnowledgeBase(open_qdrant("", Path(tmp)), settings_encoder(settings))
        kb.sync("eval", kb_path or [packaged_data("kb")])
        report = evaluate_retrieval(
            kb, "eval", questions, lambda hit: is_relevant(hit, settings.kb_min_score)
        )
        kb.client.close()
    table = Table(title=f"retrieval on {questions.name}")
    table.add_column("figure")
    table.add_column("value", justify="right")
    table.add_row("answerable questions", str(report.answerable))
    table.add_row("recall@1", f"{report.recall_at_1:.3f}")
    table.add_row("recall@5", f"{report.recall_at_5:.3f}")
    table.add_row("MRR", f"{report.mrr:.3f}")
    for lang, (n, top1) in sorted(report.by_lang.items()):
        table.add_row(f"recall@1 ({lang}, n={n})", f"{top1 / n:.3f}")
    table.add_row(
        "answerable judged answerable", f"{report.answered_correctly}/{report.answerable}"
    )
    table.add_row("unanswerable refused", f"{report.refused_correctly}/{report.unanswerable}")
    Console().print(table)


def _register_intent_eval() -> None:
    """`clawdesk eval intents` lives with the NLU package; list it under `eval`."""
    from clawdesk.cli.eval_intents import app as nlu_eval

    eval_cli.registered_commands.extend(nlu_eval.registered_commands)


_register_intent_eval()


def _register_answers_eval() -> None:
    """`clawdesk eval answers` lives with the skills."""
    from clawdesk.cli.eval_answers import eval_answers

    eval_cli.command("answers")(eval_answers)


_register_answers_eval()


def _register_conversations_eval() -> None:
    """`clawdesk eval conversations` lives with the conversation tests."""
    from clawdesk.conversations.command import conversations

    eval_cli.command("conversations")(conversations)


_register_conversations_eval()


def _register_tenant_commands() -> None:
    """`clawdesk tenant key create|revoke` lives with the API-key code."""
    from clawdesk.cli.tenant import app as tenant_cli

    cli.add_typer(tenant_cli, name="tenant")


_register_tenant_commands()


def _register_soak_command() -> None:
    """`clawdesk soak` lives with the soak package."""
    from clawdesk.soak.command import soak

    cli.command("soak")(soak)


_register_soak_command()


def _register_replay_commands() -> None:
    """`clawdesk replay …` lives with the replay package."""
    from clawdesk.bench.replay import bench_replay
    from clawdesk.replay.command import app as replay_cli

    cli.add_typer(replay_cli, name="replay")
    bench_cli.command("replay")(bench_replay)


_register_replay_commands()


def _register_export_commands() -> None:
    """`clawdesk export …` lives with the export code."""
    from clawdesk.replay.export import app as export_cli

    cli.add_typer(export_cli, name="export")


_register_export_commands()


def _register_topic_commands() -> None:
    """`clawdesk topics …` lives with the topic tools."""
    from clawdesk.cli.topics import app as topics_cli

    cli.add_typer(topics_cli, name="topics")


_register_topic_commands()


def main() -> None:
    """Entry point of the `clawdesk` script."""
    cli()


if __name__ == "__main__":
    main()
