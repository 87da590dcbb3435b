"""`clawdesk bench replay`: the replay's throughput next to the live pipeline's, measured
in one run on the same machine, and the size of the diff report.

N questions (one conversation each) go through a live worker (every stage, the
dispatcher included) and are answered; the worker stops; the same messages are then
replayed from Postgres through a shadow worker with production's own version. Both
rates leave out the workers' start: live counts from the first question after a
warm-up reply, the replay from its first settled message.
"""

from __future__ import annotations

import asyncio
import json
import tempfile
import time
from contextlib import ExitStack
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

from rich.console import Console
from rich.table import Table

from clawdesk.bench.harness import Harness, Received, wait_for
from clawdesk.bench.pipeline import questions
from clawdesk.replay import driver
from clawdesk.replay.candidate import Candidate
from clawdesk.replay.diff import run_report
from clawdesk.replay.report import render_html
from clawdesk.replay.shadow import Infra
from clawdesk.replay.source import Selection
from clawdesk.settings import AppSettings, app_settings, connection_settings
from schemas import Reply
from topics import outbound_spec

console = Console(stderr=True)


@dataclass(frozen=True)
class ReplayBench:
    """The figures of one run."""

    n: int
    live_msgs_per_s: float
    replay_msgs_per_s: float
    changed: int
    diff_json_bytes: int
    diff_html_bytes: int


def bench_replay(n: int = 1000) -> None:
    """Messages/s of a replay next to the live pipeline's, and the diff report's size."""
    result = run(n)
    table = Table(title="clawdesk bench replay")
    table.add_column("figure")
    table.add_column("value", justify="right")
    table.add_row("messages", str(result.n))
    table.add_row("live pipeline msgs/s", f"{result.live_msgs_per_s:.1f}")
    table.add_row("replay msgs/s", f"{result.replay_msgs_per_s:.1f}")
    table.add_row("replay / live", f"{result.replay_msgs_per_s / result.live_msgs_per_s:.2f}")
    table.add_row("changed messages (unchanged candidate)", str(result.changed))
    table.add_row("diff report, JSON (bytes)", f"{result.diff_json_bytes:,}")
    table.add_row("diff report, HTML (bytes)", f"{result.diff_html_bytes:,}")
    Console().print(table)


def run(n: int) -> ReplayBench:
    """Live, then replay, on a private embedded system (or the configured parts)."""
    from clawdesk.runtime.stack import Infrastructure, spawn_worker, stop_process

    with ExitStack() as stack:
        tmp = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="clawdesk-rbench-")))
        infra = Infrastructure(tmp, connection_settings()).start()
        stack.callback(infra.stop)
        app_id = f"rbench{int(time.time()) % 100000}"
        settings = app_settings().model_copy(
            update={
                "data_dir": tmp,
                "app_id": app_id,
                "topic_prefix": app_id,
                "models_dir": app_settings().model_root.resolve(),
            }
        )
        env = {
            **infra.env(),
            "CLAWDESK_APP_ID": app_id,
            "CLAWDESK_TOPIC_PREFIX": app_id,
            "CLAWDESK_MODELS_DIR": str(settings.model_root),
            "CLAWDESK_METRICS_PORT": "0",
        }
        from clawdesk.runtime.stack import topic_partitions
        from clawdesk.runtime.supervisor import create_topics

        create_topics(infra.bootstrap_servers, topic_partitions(settings))
        since = datetime.now(UTC) - timedelta(seconds=1)
        worker = spawn_worker("live", settings, env, tmp / "live.log")
        console.print(f"live: {n} questions through a worker…")
        try:
            seconds = asyncio.run(_push(infra.bootstrap_servers, settings, n))
        finally:
            stop_process(worker)
        live = n / seconds
        console.print(f"replay: the same {n} messages in shadow…")
        replay = driver.Replay(
            Infra(infra.bootstrap_servers, infra.database_url, infra.redis_url), settings
        )
        marks: list[tuple[float, int]] = []
        done = driver.start(
            replay,
            "bench",
            Selection(since, datetime.now(UTC)),
            Candidate(),
            lambda settled, _total: marks.append((time.monotonic(), settled)),
        )
        if done.status != "finished":
            raise RuntimeError(f"the replay did not finish: {done.error}")
        (t0, first), (t1, last) = marks[1] if len(marks) > 1 else marks[0], marks[-1]
        replayed = (last - first) / (t1 - t0) if t1 > t0 else float("nan")
        report = run_report(infra.database_url, "bench")
        return ReplayBench(
            n=report.messages,
            live_msgs_per_s=live,
            replay_msgs_per_s=replayed,
            changed=len(report.changed),
            diff_json_bytes=len(json.dumps(report.to_json(), default=str).encode()),
            diff_html_bytes=len(render_html(report).encode()),
        )


async def _push(bootstrap: str, settings: AppSettings, n: int) -> float:
    """Seconds from the first question (after a warm-up reply) to the last reply."""
    async with Harness(bootstrap, settings) as harness:
        out = await harness.follow(outbound_spec)
        warm = await harness.ask("hi")
        await wait_for(out, lambda rs: _answered(rs, warm.event_id), 600)
        start, t0 = len(out), time.monotonic()
        for i, text in enumerate(questions(n, 0.0)):
            await harness.ask(text, f"bench-{i}")
        await wait_for(out, lambda rs: len(rs) - start >= n, 1800)
        return time.monotonic() - t0


def _answered(records: list[Received], event_id: str) -> bool:
    return any(Reply.from_bytes(r.value).in_reply_to == event_id for r in records)
