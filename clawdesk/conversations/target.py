"""The pipeline `clawdesk eval conversations` plays scenarios through (its command is
`clawdesk/cli/eval.py`).

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

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

import clawdesk
from clawdesk.bench.harness import Harness
from clawdesk.conversations.runner import RunOptions, run_cases
from clawdesk.conversations.scenarios import Case
from clawdesk.conversations.scoring import ScenarioRun
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
