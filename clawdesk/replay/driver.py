"""Start, resume and watch a replay: the stored messages through a shadow pipeline.

`start` registers the run, builds its schema, reads the selected messages, and runs an
attempt; `resume` runs another attempt for the conversations the last one did not
finish (each from its first message, so memory is rebuilt as it was). An attempt
starts its worker and feeds it the messages in event order per conversation
(`Feeder`) until every message has a decision (or a dead letter) in the run's schema,
reporting progress as it goes.
"""

from __future__ import annotations

import asyncio
import logging
import os
import shutil
import subprocess
import time
from collections import defaultdict, deque
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import psycopg
from aiokafka import AIOKafkaProducer
from psycopg import sql

from clawdesk.replay import runs
from clawdesk.replay.candidate import Candidate
from clawdesk.replay.runs import Run, RunError
from clawdesk.replay.shadow import Attempt, Infra, is_shadow_worker, spawn_worker, stop_pid
from clawdesk.replay.source import FileSource, Selection, TopicSource, messages
from clawdesk.runtime.stack import stop_process
from clawdesk.runtime.supervisor import create_topics
from clawdesk.settings import AppSettings
from schemas import InboundMessage
from topics import inbound_spec

log = logging.getLogger(__name__)

POLL_S = 0.1
# No new decision for this long and the run gives up; the first one may take longer:
# a new worker loads its models and indexes the KB into its own Qdrant folder first.
DEFAULT_STALL_S = 180.0
DEFAULT_START_S = 600.0

Progress = Callable[[int, int], None]  # (settled so far, total)


class Stopped(Exception):
    """The run was asked to stop (Ctrl-C, `clawdesk replay stop`)."""


@dataclass(frozen=True)
class Replay:
    """What a replay needs from its caller: production's parts and settings."""

    infra: Infra
    production: AppSettings
    stall_s: float = DEFAULT_STALL_S
    start_s: float = DEFAULT_START_S

    @property
    def url(self) -> str:
        """Production's Postgres (the runs registry; the run schemas beside it)."""
        return self.infra.database_url


def start(
    replay: Replay,
    name: str,
    source: Selection | FileSource | TopicSource,
    candidate: Candidate,
    on_progress: Progress | None = None,
) -> Run:
    """A new run over the source's messages; returns it when it ends."""
    chosen = messages(replay.url, source.dump())  # a bad file fails before the run exists
    run = runs.create(replay.url, name, candidate.overrides, source.dump())
    runs.prepare_schema(replay.url, run.schema_name)
    runs.update(replay.url, name, total=len(chosen))
    return _attempt(replay, runs.get(replay.url, name), chosen, on_progress)


def resume(replay: Replay, name: str, on_progress: Progress | None = None) -> Run:
    """Finish a run that stopped or crashed: replay its unfinished conversations."""
    run = runs.get(replay.url, name)
    if run.status == "finished":
        return run
    if run.driver_pid and run.driver_pid != os.getpid() and _is_driver(run.driver_pid):
        raise RunError(f"run {name!r} is running (pid {run.driver_pid}): stop it first")
    if run.worker_pid and is_shadow_worker(run.worker_pid, name):
        stop_pid(run.worker_pid)  # the worker of a driver that was killed
    every = messages(replay.url, run.source)
    decided = runs.decided_ids(replay.url, run.schema_name)
    open_conversations = {m.conversation_id for m in every if m.event_id not in decided}
    todo = [m for m in every if m.conversation_id in open_conversations]
    runs.forget_conversations(
        replay.url, run.schema_name, sorted(open_conversations), [m.event_id for m in todo]
    )
    log.info("resuming", extra={"run": name, "messages": len(todo), "of": len(every)})
    return _attempt(replay, run, todo, on_progress)


def stop(replay: Replay, name: str) -> Run:
    """Stop a running run's driver and worker; `resume` finishes it later."""
    run = runs.get(replay.url, name)
    if run.status != "running":
        return run
    if run.driver_pid and run.driver_pid != os.getpid() and _is_driver(run.driver_pid):
        stop_pid(run.driver_pid, timeout_s=20.0)  # it stops its own worker first
    if run.worker_pid and is_shadow_worker(run.worker_pid, name):
        stop_pid(run.worker_pid)
    runs.update(replay.url, name, status="stopped", worker_pid=None, driver_pid=None)
    return runs.get(replay.url, name)


def delete(replay: Replay, name: str) -> None:
    """Stop the run if it runs, then drop its schema, row and folder."""
    stop(replay, name)
    runs.delete(replay.url, name)
    shutil.rmtree(replay.production.data_dir / "replay" / name, ignore_errors=True)


def _attempt(
    replay: Replay,
    run: Run,
    todo: list[InboundMessage],
    on_progress: Progress | None,
) -> Run:
    attempt = Attempt(run.name, run.attempt + 1, replay.production)
    runs.update(
        replay.url,
        run.name,
        status="running",
        attempt=attempt.number,
        app_id=attempt.app_id,
        topic_prefix=attempt.topic_prefix,
        driver_pid=os.getpid(),
        error="",
    )
    create_topics(replay.infra.bootstrap_servers, attempt.topics())
    env = attempt.env(replay.infra, Candidate(dict(run.candidate)).env())
    worker = spawn_worker(attempt, env)
    runs.update(replay.url, run.name, worker_pid=worker.pid)
    status, error = "failed", ""
    try:
        asyncio.run(Feeder(replay, run, attempt, worker, on_progress).run(todo))
        status = "finished"
    except (Stopped, KeyboardInterrupt):
        status = "stopped"
    except RunError as err:
        error = str(err)
    finally:
        stop_process(worker)
        runs.update(
            replay.url,
            run.name,
            status=status,
            error=error,
            worker_pid=None,
            driver_pid=None,
            finished_at=datetime.now(UTC) if status == "finished" else None,
        )
    return runs.get(replay.url, run.name)


class Feeder:
    """Puts an attempt's messages on its inbound topic in event order per conversation:
    a conversation's next message only once the shadow settled the previous one (a
    decision, or a dead letter), as its customer waited for the reply. Production
    decided each message with the earlier ones' effects (memory, a handoff) in place;
    a burst of one conversation's messages would race them."""

    def __init__(
        self,
        replay: Replay,
        run: Run,
        attempt: Attempt,
        worker: subprocess.Popen[bytes],
        on_progress: Progress | None,
    ) -> None:
        self.replay, self.run_row, self.attempt, self.worker = replay, run, attempt, worker
        self.on_progress = on_progress
        self.topic = inbound_spec.name(attempt.settings)
        self._dead_seen = 0  # dead_letters.id already looked at

    async def run(self, messages: list[InboundMessage]) -> None:
        """Feed every message and return once all are settled (RunError if the worker
        dies or stalls)."""
        waiting: dict[str, deque[InboundMessage]] = defaultdict(deque)
        for msg in messages:
            waiting[msg.conversation_id].append(msg)
        producer = AIOKafkaProducer(
            bootstrap_servers=self.replay.infra.bootstrap_servers, acks="all", linger_ms=5
        )
        await producer.start()
        schema = self.run_row.schema_name
        try:
            async with await psycopg.AsyncConnection.connect(self.replay.url) as conn:
                in_flight: dict[str, InboundMessage] = {}
                await self._send(producer, [q.popleft() for q in waiting.values()], in_flight)
                first, last, changed_at = None, -1, time.monotonic()
                while in_flight:
                    await asyncio.sleep(POLL_S)
                    settled = await self._settled(conn, schema, list(in_flight))
                    nxt = []
                    for event_id in settled:
                        queue = waiting[in_flight.pop(event_id).conversation_id]
                        if queue:
                            nxt.append(queue.popleft())
                    await self._send(producer, nxt, in_flight)
                    done = await self._count(conn, schema)
                    if done != last:
                        first = done if first is None else first
                        last, changed_at = done, time.monotonic()
                        if self.on_progress is not None:
                            self.on_progress(min(done, self.run_row.total), self.run_row.total)
                    self._check(done, first, changed_at)
        finally:
            await producer.stop()

    async def _send(
        self,
        producer: AIOKafkaProducer,
        batch: list[InboundMessage],
        in_flight: dict[str, InboundMessage],
    ) -> None:
        sends = [
            await producer.send(self.topic, value=m.to_bytes(), key=m.conversation_id.encode())
            for m in batch
        ]
        await asyncio.gather(*sends)
        in_flight.update((m.event_id, m) for m in batch)

    async def _settled(
        self, conn: psycopg.AsyncConnection[Any], schema: str, ids: list[str]
    ) -> set[str]:
        """Which of these messages have a decision or a dead letter in the run."""
        cur = await conn.execute(
            sql.SQL("SELECT message_id FROM {} WHERE message_id = ANY(%s)").format(
                sql.Identifier(schema, "decisions")
            ),
            (ids,),
        )
        found = {r[0] for r in await cur.fetchall()}
        cur = await conn.execute(
            sql.SQL("SELECT id, event FROM {} WHERE id > %s ORDER BY id").format(
                sql.Identifier(schema, "dead_letters")
            ),
            (self._dead_seen,),
        )
        letters = await cur.fetchall()
        for letter_id, event in letters:
            self._dead_seen = max(self._dead_seen, letter_id)
            found.update(i for i in ids if i in event)  # the letter holds its event's lineage
        await conn.commit()
        return found

    async def _count(self, conn: psycopg.AsyncConnection[Any], schema: str) -> int:
        cur = await conn.execute(
            sql.SQL("SELECT (SELECT count(*) FROM {}) + (SELECT count(*) FROM {})").format(
                sql.Identifier(schema, "decisions"), sql.Identifier(schema, "dead_letters")
            )
        )
        row = await cur.fetchone()
        await conn.commit()
        return int(row[0]) if row else 0

    def _check(self, done: int, first: int | None, changed_at: float) -> None:
        total = self.run_row.total
        if self.worker.poll() is not None:
            raise RunError(
                f"the shadow worker exited with {self.worker.returncode} at {done}/{total}"
                f" (log: {self.attempt.folder / 'worker.log'})"
            )
        limit = self.replay.start_s if done == first else self.replay.stall_s
        if time.monotonic() - changed_at > limit:
            raise RunError(f"no progress for {limit:.0f}s at {done}/{total}")


def _is_driver(pid: int) -> bool:
    """Whether `pid` is still a `clawdesk replay` driver (pids are reused)."""
    try:
        cmdline = open(f"/proc/{pid}/cmdline", "rb").read()
    except OSError:
        return False
    return b"replay" in cmdline
