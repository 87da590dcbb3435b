"""`clawdesk eval conversations` (registered under `eval` by `clawdesk.cli.commands`).

Against the running system when KAFKA_BOOTSTRAP_SERVERS is set (its workers answer);
else a private embedded one, as `clawdesk bench` starts it: broker, Postgres and Redis
(configured ones where DATABASE_URL / REDIS_URL are set) and one worker. The worker's
NLU models are kept under `<data_dir>/eval-conversations/models-<fingerprint>`, the
fingerprint covering the demo intents and the NLU code, so only the first run after a
change of either trains the demo model again.
"""

from __future__ import annotations

import asyncio
import hashlib
import subprocess
import tempfile
from collections.abc import Callable, Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

import clawdesk
from clawdesk.bench.harness import Harness
from clawdesk.conversations.report import print_summary, write_json, write_junit
from clawdesk.conversations.runner import RunOptions, run_cases
from clawdesk.conversations.scenarios import Case, ScenarioError, load_files
from clawdesk.conversations.scoring import ScenarioRun, Summary, summarize
from clawdesk.llm.echo_server import EchoProcess
from clawdesk.sandbox import Sandbox
from clawdesk.settings import AppSettings, app_settings, connection_settings
from schemas import new_id

# What the demo intent model is trained from: a change to any of them trains it afresh.
MODEL_INPUTS = ("data/intents/demo.yaml", "nlu/**/*.py", "kb/packaged_models.py")


@dataclass(frozen=True)
class Target:
    """The pipeline to talk to, and a check that its worker (if we started one) lives."""

    bootstrap: str
    settings: AppSettings
    alive: Callable[[], bool]


def conversations(
    files: Annotated[list[Path], typer.Argument(help="scenario files (YAML)", exists=True)],
    k: Annotated[int, typer.Option("--k", min=1, help="runs per scenario (pass^k)")] = 1,
    json_out: Annotated[Path | None, typer.Option("--json", help="write figures here")] = None,
    junit: Annotated[Path | None, typer.Option("--junit", help="write JUnit XML here")] = None,
    fail_under: Annotated[
        float | None, typer.Option(help="exit 1 if the scenario pass rate (%) is lower")
    ] = None,
    concurrency: Annotated[int, typer.Option(min=1, help="conversations at once")] = 8,
    turn_timeout: Annotated[float, typer.Option(help="seconds a turn waits for its reply")] = 30.0,
    quiet: Annotated[float, typer.Option(help="seconds `no_reply: true` waits")] = 5.0,
    show_failures: Annotated[
        bool, typer.Option("--failures/--no-failures", help="print each failing turn")
    ] = True,
    retrain: Annotated[
        bool, typer.Option(help="private system: train the NLU model afresh, not reuse it")
    ] = False,
    sandbox: Annotated[
        bool,
        typer.Option(
            help="private system: serve the sandbox providers (Shopify, Stripe, Zendesk, "
            "DHL, HubSpot with the demo orders) so refunds, cancellations and tickets run"
        ),
    ] = True,
    echo_llm: Annotated[
        bool,
        typer.Option(
            help="private system: LLM mode against the echo endpoint "
            "(clawdesk.llm.echo_server: no model, it quotes the first passage it is given)"
        ),
    ] = False,
) -> None:
    """Play conversation scenarios through the real pipeline and score every turn:
    scenarios and turns passed, pass^k, per language and tag, each failing turn."""
    console = Console(stderr=True)
    try:
        cases = load_files(files)
    except ScenarioError as err:
        for problem in err.problems:
            console.print(problem, markup=False, highlight=False, soft_wrap=True)
        raise typer.Exit(2) from err
    options = RunOptions(k=k, concurrency=concurrency, turn_timeout_s=turn_timeout, quiet_s=quiet)
    with target(console, retrain, sandbox=sandbox, echo_llm=echo_llm) as where:
        summary = summarize(evaluate(where, cases, options, console), k)
    print_summary(Console(), summary, failures=show_failures)
    if json_out:
        write_json(summary, json_out)
    if junit:
        write_junit(summary, junit)
    _exit_code(summary, fail_under)


def evaluate(
    where: Target, cases: list[Case], options: RunOptions, console: Console
) -> list[ScenarioRun]:
    """Every run of every case, with a progress bar."""
    columns = (
        TextColumn("{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
    )
    with Progress(*columns, console=console) as progress:
        task = progress.add_task("warming up", total=len(cases) * options.k)

        def done(_: ScenarioRun) -> None:
            progress.update(task, description="conversations", advance=1)

        return asyncio.run(_evaluate(where, cases, options, done))


async def _evaluate(
    where: Target, cases: list[Case], options: RunOptions, done: Callable[[ScenarioRun], None]
) -> list[ScenarioRun]:
    async with Harness(where.bootstrap, where.settings) as harness:
        return await run_cases(harness, cases, options, done, alive=where.alive)


def _exit_code(summary: Summary, fail_under: float | None) -> None:
    if fail_under is not None and summary.overall.runs.rate * 100 < fail_under:
        raise typer.Exit(1)


@contextmanager
def target(
    console: Console, retrain: bool, *, sandbox: bool = True, echo_llm: bool = False
) -> Iterator[Target]:
    """The configured broker, or a private embedded system for the length of the run
    (with the sandbox providers, unless `sandbox` is off, and in LLM mode against the
    echo endpoint with `echo_llm`)."""
    conn, settings = connection_settings(), app_settings()
    if conn.kafka_bootstrap_servers:
        yield Target(conn.kafka_bootstrap_servers, settings, lambda: True)
        return
    from clawdesk.runtime.stack import Infrastructure, spawn_worker, stop_process, topic_partitions
    from clawdesk.runtime.supervisor import create_topics

    with ExitStack() as stack:
        console.print("no KAFKA_BOOTSTRAP_SERVERS: starting a private embedded system…")
        tmp = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="clawdesk-conv-")))
        infra = Infrastructure(tmp, conn).start()
        stack.callback(infra.stop)
        app_id = f"conv{new_id()[:8]}"
        models = tmp / "models" if retrain else shared_models_dir(settings)
        run_settings = settings.model_copy(
            update={"data_dir": tmp, "app_id": app_id, "topic_prefix": app_id, "models_dir": models}
        )
        create_topics(infra.bootstrap_servers, topic_partitions(run_settings))
        env = {
            **infra.env(),
            "CLAWDESK_APP_ID": app_id,
            "CLAWDESK_TOPIC_PREFIX": app_id,
            "CLAWDESK_MODELS_DIR": str(models),
            "CLAWDESK_METRICS_PORT": "0",
            "HF_HUB_OFFLINE": "1",
        }
        if sandbox:
            providers = stack.enter_context(Sandbox())
            env.update(providers.env())
            console.print("sandbox providers: Shopify, Stripe, Zendesk, DHL, HubSpot (demo orders)")
        if echo_llm:
            echo = EchoProcess().start()
            stack.callback(echo.stop)
            env.update({"CLAWDESK_LLM_BASE_URL": echo.url, "CLAWDESK_LLM_API_KEY": "echo"})
            console.print(f"LLM mode: the echo endpoint at {echo.url}")
        log = settings.data_dir / "logs" / "eval-conversations-worker.log"
        log.parent.mkdir(parents=True, exist_ok=True)
        log.write_bytes(b"")  # this run's log only
        worker = spawn_worker("eval", run_settings, env, log)
        stack.callback(stop_process, worker)
        console.print(f"worker log: {log}")
        yield Target(infra.bootstrap_servers, run_settings, lambda: _running(worker))


def _running(proc: subprocess.Popen[bytes]) -> bool:
    return proc.poll() is None


def shared_models_dir(settings: AppSettings) -> Path:
    """Where the private system's worker keeps its models between runs."""
    digest = hashlib.sha256()
    root = Path(clawdesk.__file__).parent
    for pattern in MODEL_INPUTS:
        for path in sorted(root.glob(pattern)):
            digest.update(path.relative_to(root).as_posix().encode())
            digest.update(path.read_bytes())
    return settings.data_dir / "eval-conversations" / f"models-{digest.hexdigest()[:12]}"
