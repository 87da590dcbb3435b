"""`clawdesk bench --workers STAGE`: one worker per stage, then a second worker of STAGE
(the bottleneck), the same load each time; msgs/s and p99 for both and their ratio."""

from __future__ import annotations

import asyncio
import subprocess
import tempfile
import time
from contextlib import ExitStack
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from rich.console import Console
from rich.table import Table

from agents import STAGE_NAMES, stage
from clawdesk.bench.pipeline import push, questions
from clawdesk.ops.groups import GroupReader
from clawdesk.settings import AppSettings, app_settings, connection_settings

GROUP_TIMEOUT_S = 600.0  # a first start trains the demo NLU and embeds the KB


@dataclass(frozen=True)
class Run:
    """One load at one layout."""

    workers: int
    answered: int
    msgs_per_s: float
    p50_ms: float
    p99_ms: float


async def until_members(bootstrap: str, settings: AppSettings, members: dict[str, int]) -> float:
    """Seconds until every stage's group has its expected members, each owning partitions."""
    t0 = time.monotonic()
    async with GroupReader(bootstrap, settings) as reader:
        while True:
            views = {v.stage: v for v in await reader.observe()}
            if all(
                len(views[s].members) == n and all(m.assignment for m in views[s].members)
                for s, n in members.items()
            ):
                return time.monotonic() - t0
            if time.monotonic() - t0 > GROUP_TIMEOUT_S:
                raise TimeoutError(f"groups did not settle: {members}")
            await asyncio.sleep(1.0)


def ready(log: Path) -> None:
    """Wait until the worker writing `log` has its services (models loaded)."""
    deadline = time.monotonic() + GROUP_TIMEOUT_S
    while '"services ready"' not in log.read_text(errors="replace"):
        if time.monotonic() > deadline:
            raise TimeoutError(f"{log.name}: services not ready")
        time.sleep(0.5)


def measure(bootstrap: str, texts: list[str], workers: int) -> Run:
    """Push `texts` and wait for every reply."""
    seconds, latencies = asyncio.run(push(bootstrap, texts, timeout=900))
    lat = np.array(latencies) * 1000
    return Run(
        workers=workers,
        answered=len(latencies),
        msgs_per_s=len(latencies) / seconds,
        p50_ms=float(np.percentile(lat, 50)),
        p99_ms=float(np.percentile(lat, 99)),
    )


def run_scaling(bottleneck: str, n: int, console: Console) -> tuple[Run, Run]:
    """1 then 2 workers of `bottleneck` (one of every other stage), on a private system."""
    from clawdesk.runtime.stack import Infrastructure, spawn_worker, stop_process

    stage(bottleneck)  # ValueError for an unknown stage
    conn = connection_settings()
    with ExitStack() as stack:
        tmp = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="clawdesk-bench-")))
        infra = Infrastructure(tmp, conn).start()
        stack.callback(infra.stop)
        settings = app_settings().model_copy(update={"data_dir": tmp})
        # One models folder: the second worker of a model stage loads, it does not train.
        shared = {
            **infra.env(),
            "CLAWDESK_METRICS_PORT": "0",
            "CLAWDESK_MODELS_DIR": str(tmp / "models"),
        }

        def start(name: str, stage_name: str) -> subprocess.Popen[bytes]:
            env = {**shared, "CLAWDESK_STAGE": stage_name}
            proc = spawn_worker(name, settings, env, tmp / f"{name}.log")
            stack.callback(stop_process, proc)
            return proc

        t0 = time.monotonic()
        for name in STAGE_NAMES:
            start(f"{name}-1", name)
        layout = dict.fromkeys(STAGE_NAMES, 1)
        console.print("starting one worker per stage…")
        asyncio.run(until_members(infra.bootstrap_servers, settings, layout))
        for name in STAGE_NAMES:
            ready(tmp / f"{name}-1.log")
        console.print(f"  every stage ready {time.monotonic() - t0:.1f} s after start")
        console.print(f"pushing {n} questions with 1 {bottleneck} worker…")
        # Two halves of one question list: numbered apart, so the second run's questions
        # are not the first run's, cached (L1/L2) by the first.
        texts = questions(2 * n, 0.0, seed=21)
        one = measure(infra.bootstrap_servers, texts[:n], 1)
        t1 = time.monotonic()
        start(f"{bottleneck}-2", bottleneck)
        asyncio.run(until_members(infra.bootstrap_servers, settings, {**layout, bottleneck: 2}))
        joined = time.monotonic() - t1
        ready(tmp / f"{bottleneck}-2.log")
        console.print(
            f"  second {bottleneck} worker: partitions in {joined:.1f} s, "
            f"ready {time.monotonic() - t1:.1f} s after start"
        )
        console.print(f"pushing {n} other questions with 2 {bottleneck} workers…")
        two = measure(infra.bootstrap_servers, texts[n:], 2)
    table = Table(title=f"clawdesk bench --workers {bottleneck}")
    for column in ("workers", "answered", "msgs/s", "p50 ms", "p99 ms"):
        table.add_column(column, justify="right")
    for run in (one, two):
        table.add_row(
            str(run.workers),
            str(run.answered),
            f"{run.msgs_per_s:.1f}",
            f"{run.p50_ms:.0f}",
            f"{run.p99_ms:.0f}",
        )
    Console().print(table)
    ratio = two.msgs_per_s / one.msgs_per_s if one.msgs_per_s else 0.0
    Console().print(f"scaling ratio (2 workers / 1): {ratio:.2f}x")
    return one, two
