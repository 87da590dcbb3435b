"""`clawdesk bench startup`: how long a worker takes from process start to its first reply.

Each scenario starts a Faust worker process, puts a question on the inbound topic at
once, and times process start → the answer on the outbound topic. The scenarios are the
ones operators meet: the very first start (trains the demo intent model and indexes the
KB), a restart after a clean stop, a restart after a crash (kill -9: the dead member
stays in the group until its session times out), and a new worker with an empty data
dir (models stored, KB not yet indexed locally, table state from the changelog).
"""

from __future__ import annotations

import asyncio
import re
import statistics
import subprocess
import tempfile
import time
from contextlib import ExitStack
from dataclasses import dataclass, field
from pathlib import Path

from rich.console import Console
from rich.table import Table

from clawdesk.bench.harness import Harness, Received, wait_for
from clawdesk.settings import AppSettings, app_settings, connection_settings
from schemas import Reply, new_id
from topics import outbound_spec

SERVICES_READY = re.compile(r'"message": "services ready", "seconds": ([0-9.]+)')


@dataclass
class Sample:
    """One timed start."""

    scenario: str
    seconds: float
    services_s: float | None


@dataclass
class StartupBench:
    """A private pipeline (own app id and topics) whose worker we start and stop."""

    bootstrap: str
    env: dict[str, str]
    settings: AppSettings
    root: Path
    samples: list[Sample] = field(default_factory=list)
    _proc: subprocess.Popen[bytes] | None = None

    def _spawn(self, worker: str) -> subprocess.Popen[bytes]:
        from clawdesk.runtime.stack import spawn_worker

        settings = self.settings.model_copy(update={"data_dir": self.root})
        return spawn_worker(worker, settings, self.env, self.root / f"{worker}.log")

    def _services_seconds(self, worker: str, since: int) -> float | None:
        text = (self.root / f"{worker}.log").read_text(errors="replace")[since:]
        found = SERVICES_READY.findall(text)
        return float(found[-1]) if found else None

    async def time_start(self, scenario: str, worker: str, timeout: float) -> Sample:
        """Start `worker`, ask at once, and time process start → reply."""
        log = self.root / f"{worker}.log"
        offset = log.stat().st_size if log.exists() else 0
        async with Harness(self.bootstrap, self.settings) as harness:
            out = await harness.follow(outbound_spec)
            await asyncio.sleep(0.5)  # the follower is positioned before we start
            started = time.monotonic()
            self._proc = self._spawn(worker)
            question = await harness.ask("How long does shipping to Germany take?")
            await wait_for(out, lambda rs: _answered(rs, question.event_id), timeout)
            seconds = time.monotonic() - started
        sample = Sample(scenario, seconds, self._services_seconds(worker, offset))
        self.samples.append(sample)
        return sample

    def stop(self, *, crash: bool = False) -> None:
        """Stop the running worker: SIGTERM (clean leave) or SIGKILL (a crash)."""
        from clawdesk.runtime.stack import stop_process

        if self._proc is None:
            return
        if crash:
            self._proc.kill()
            self._proc.wait()
        else:
            stop_process(self._proc)
        self._proc = None


def _answered(records: list[Received], event_id: str) -> bool:
    return any(Reply.from_bytes(r.value).in_reply_to == event_id for r in records)


async def _run(bench: StartupBench, runs: int, timeout: float, console: Console) -> None:
    steps: list[tuple[str, str, bool]] = [("first start (trains NLU, indexes KB)", "a", False)]
    for _ in range(runs):
        steps.append(("restart after clean stop", "a", False))
    for _ in range(runs):
        steps.append(("restart after crash (kill -9)", "a", True))
    for i in range(runs):
        steps.append(("new worker, empty data dir", f"n{i}", False))
    for scenario, worker, crash in steps:
        sample = await bench.time_start(scenario, worker, timeout)
        console.print(f"{scenario}: {sample.seconds:.1f} s")
        bench.stop(crash=crash)
        await asyncio.sleep(1.0)  # let the broker see the stop before the next start


def bench_startup(runs: int = 3, timeout: float = 180.0, keep: Path | None = None) -> None:
    """Time worker process start → first answered message, per start-up scenario.

    Uses KAFKA_BOOTSTRAP_SERVERS / DATABASE_URL / REDIS_URL when set, else starts a
    private embedded broker, Postgres and Redis. Each run uses its own app id, topics
    and data directory, so it never disturbs a running system.
    """
    from clawdesk.runtime.stack import Infrastructure

    console = Console()
    conn = connection_settings()
    with ExitStack() as stack:
        if keep is None:
            root = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="clawdesk-start-")))
        else:
            root = keep.resolve()
            root.mkdir(parents=True, exist_ok=True)
        infra = Infrastructure(root / "infra", conn).start()
        stack.callback(infra.stop)
        app_id = f"startup{new_id()[:6]}"
        settings = app_settings().model_copy(
            update={"app_id": app_id, "topic_prefix": app_id, "models_dir": root / "models"}
        )
        env = {
            **infra.env(),
            "CLAWDESK_APP_ID": app_id,
            "CLAWDESK_TOPIC_PREFIX": app_id,
            "CLAWDESK_MODELS_DIR": str(root / "models"),
            "CLAWDESK_METRICS_PORT": "0",
        }
        bench = StartupBench(infra.bootstrap_servers, env, settings, root)
        stack.callback(bench.stop)
        asyncio.run(_run(bench, runs, timeout, console))
    table = Table(title="clawdesk bench startup: process start → first reply")
    table.add_column("scenario")
    table.add_column("runs", justify="right")
    table.add_column("median s", justify="right")
    table.add_column("min–max s", justify="right")
    table.add_column("services ready s (median)", justify="right")
    for scenario in dict.fromkeys(s.scenario for s in bench.samples):
        rows = [s for s in bench.samples if s.scenario == scenario]
        secs = [s.seconds for s in rows]
        services = [s.services_s for s in rows if s.services_s is not None]
        table.add_row(
            scenario,
            str(len(rows)),
            f"{statistics.median(secs):.1f}",
            f"{min(secs):.1f}–{max(secs):.1f}",
            f"{statistics.median(services):.1f}" if services else "n/a",
        )
    console.print(table)
