"""Keep every part of `clawdesk up` running: restart what crashed, with backoff.

Each part (the embedded broker, Postgres and Redis, every worker, the gateway) is a
`Child`. The supervisor looks at them every tick; one that died is started again after
a backoff that doubles on each quick crash (and resets once it stayed up a while), and
one child's crash never stops the others. A broker that comes back has lost its topics
(Tansu keeps them in memory), so the topics are created again, the workers and the
gateway start over on the new broker (workers with their local table state dropped: its
changelog is gone), and every open message of the inbound log is re-driven at once.

Every start, exit and restart goes to `on_event` (the console of `clawdesk up`) and to
the metrics `clawdesk_child_up{child}` and `clawdesk_child_restarts_total{child}`.
"""

from __future__ import annotations

import asyncio
import logging
import os
import signal
import subprocess
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol

from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from aiokafka.errors import TopicAlreadyExistsError
from prometheus_client import Counter, Gauge

from clawdesk.runtime.broker import EmbeddedBroker
from clawdesk.runtime.ports import wait_for_port
from clawdesk.runtime.stores import EmbeddedPostgres, EmbeddedRedis

log = logging.getLogger(__name__)

CHILD_UP = Gauge("clawdesk_child_up", "Whether a supervised part is running (1) or not", ["child"])
CHILD_RESTARTS = Counter(
    "clawdesk_child_restarts", "Restarts of a supervised part after it died", ["child"]
)

MIN_BACKOFF_S = 0.5
MAX_BACKOFF_S = 30.0
STABLE_AFTER_S = 60.0  # up this long: the next crash starts the backoff from the bottom


class Child(Protocol):
    """A supervised part."""

    name: str

    def start(self) -> None:
        """Start it (again); return once it is running."""

    def alive(self) -> bool:
        """Whether it is running now."""

    def kill(self) -> None:
        """SIGKILL it (a crash, for fault injection)."""

    def stop(self) -> None:
        """Stop it gracefully."""


@dataclass
class ProcessChild:
    """A child process started from `argv()` with `env()` (a worker or the gateway)."""

    name: str
    argv: Callable[[], list[str]]
    env: Callable[[], dict[str, str]]
    log_path: Path | None = None
    before_start: Callable[[], None] | None = None
    stop_timeout_s: float = 15.0
    proc: subprocess.Popen[bytes] | None = field(default=None, init=False, repr=False)
    log_offset: int = field(default=0, init=False)

    def start(self) -> None:
        """Spawn the process (its log is appended to; `log_offset` marks this run's start)."""
        if self.before_start is not None:
            self.before_start()
        out = None
        if self.log_path is not None:
            self.log_path.parent.mkdir(parents=True, exist_ok=True)
            out = open(self.log_path, "ab")
            self.log_offset = out.tell()
        self.proc = subprocess.Popen(
            self.argv(),
            env={**os.environ, **self.env()},
            stdout=out,
            stderr=subprocess.STDOUT if out else None,
            start_new_session=True,  # Ctrl-C goes to the supervisor, which stops us in order
        )
        if out is not None:
            out.close()

    def alive(self) -> bool:
        """Whether the process runs."""
        return self.proc is not None and self.proc.poll() is None

    @property
    def pid(self) -> int | None:
        """The process id (None before the first start)."""
        return self.proc.pid if self.proc is not None else None

    def log_since_start(self) -> str:
        """What this run wrote to its log (not earlier runs')."""
        if self.log_path is None or not self.log_path.exists():
            return ""
        with open(self.log_path, "rb") as fh:
            fh.seek(self.log_offset)
            return fh.read().decode("utf-8", "replace")

    def kill(self) -> None:
        """SIGKILL the process."""
        if self.alive():
            assert self.proc is not None
            self.proc.kill()
            self.proc.wait()

    def stop(self) -> None:
        """SIGTERM, wait, then SIGKILL: Faust commits offsets and leaves its group on TERM."""
        if self.proc is None or self.proc.poll() is not None:
            return
        self.proc.send_signal(signal.SIGTERM)
        try:
            self.proc.wait(self.stop_timeout_s)
        except subprocess.TimeoutExpired:
            self.kill()


@dataclass
class BrokerChild:
    """The embedded Tansu broker, always on the same port so clients find it again."""

    broker: EmbeddedBroker
    name: str = "broker"
    # Run after each start: create the topics before any client auto-creates one.
    on_start: Callable[[], None] | None = None

    def start(self) -> None:
        """Start the broker (on the port of its first start), then `on_start`."""
        self.broker.start()
        if self.on_start is not None:
            self.on_start()

    def alive(self) -> bool:
        """Whether the broker process runs."""
        proc = self.broker.process
        return proc is not None and proc.poll() is None

    def kill(self) -> None:
        """SIGKILL the broker."""
        proc = self.broker.process
        if proc is not None and proc.poll() is None:
            proc.kill()
            proc.wait()

    def stop(self) -> None:
        """Stop the broker."""
        self.broker.stop()


@dataclass
class PostgresChild:
    """The embedded Postgres; restarted on the same data directory and socket."""

    server: EmbeddedPostgres
    name: str = "postgres"

    def start(self) -> None:
        """Start it again (pg_ctl; crash recovery replays the WAL). The first start is
        `Infrastructure`'s, which creates the database."""
        self.server.restart()

    def alive(self) -> bool:
        """Whether its postmaster runs."""
        return self.server.running()

    def kill(self) -> None:
        """Crash it: an immediate stop, no checkpoint (a SIGKILL of the postmaster would
        leave its backends holding the shared memory, which stops a restart)."""
        self.server.halt("immediate")

    def stop(self) -> None:
        """Stop it cleanly (pg_ctl stop -m fast), keeping it restartable."""
        self.server.halt("fast")


@dataclass
class RedisChild:
    """The embedded Redis; restarted on the same port."""

    server: EmbeddedRedis
    name: str = "redis"

    def start(self) -> None:
        """Start redis-server."""
        self.server.start()

    def alive(self) -> bool:
        """Whether redis-server runs."""
        return self.server.running()

    def kill(self) -> None:
        """SIGKILL redis-server."""
        self.server.kill()

    def stop(self) -> None:
        """Stop redis-server."""
        self.server.stop()


@dataclass
class _Watch:
    """The supervisor's book on one child."""

    child: Child
    started_at: float = 0.0
    backoff_s: float = MIN_BACKOFF_S
    restart_at: float | None = None  # died: start again at this monotonic time
    held_until: float = 0.0  # stopped on purpose (an outage): not restarted before
    restarts: int = 0


@dataclass
class Supervisor:
    """Starts children in order, restarts the ones that die, stops them in reverse."""

    on_event: Callable[[str], None] = lambda _: None
    # Called after the broker came back: re-drive open messages (needs Postgres).
    after_broker_restart: Callable[[], None] = lambda: None
    _watches: dict[str, _Watch] = field(default_factory=dict)
    _order: list[str] = field(default_factory=list)

    def add(self, child: Child, *, start: bool = True) -> None:
        """Supervise `child` (starting it now unless `start` is False)."""
        watch = _Watch(child, started_at=time.monotonic())
        self._watches[child.name] = watch
        self._order.append(child.name)
        if start:
            self._start(watch)
        else:  # started by its owner already
            CHILD_UP.labels(child.name).set(1 if child.alive() else 0)

    def child(self, name: str) -> Child:
        """The child called `name`."""
        return self._watches[name].child

    def names(self) -> list[str]:
        """Every child, in start order."""
        return list(self._order)

    def restarts(self, name: str) -> int:
        """How often `name` was restarted after dying."""
        return self._watches[name].restarts

    def status(self) -> dict[str, bool]:
        """Each child and whether it runs."""
        return {name: self._watches[name].child.alive() for name in self._order}

    def hold(self, name: str, seconds: float) -> None:
        """Stop `name` for `seconds` (an outage); the supervisor starts it afterwards."""
        watch = self._watches[name]
        watch.held_until = time.monotonic() + seconds
        watch.child.stop()
        CHILD_UP.labels(name).set(0)
        self.on_event(f"{name} stopped for {seconds:.0f} s")

    def tick(self) -> None:
        """Restart whatever died (once its backoff has passed)."""
        now = time.monotonic()
        for name in self._order:
            watch = self._watches[name]
            if now < watch.held_until or watch.child.alive():
                continue
            if watch.restart_at is None:
                self._died(watch, now)
            if now >= watch.restart_at:  # type: ignore[operator]
                self._restart(watch)

    def _died(self, watch: _Watch, now: float) -> None:
        CHILD_UP.labels(watch.child.name).set(0)
        if watch.held_until:  # an outage that ended: start it without waiting
            watch.held_until = 0.0
            watch.restart_at = now
            return
        if now - watch.started_at > STABLE_AFTER_S:
            watch.backoff_s = MIN_BACKOFF_S
        watch.restart_at = now + watch.backoff_s
        self.on_event(f"{watch.child.name} exited; restarting in {watch.backoff_s:.1f} s")
        watch.backoff_s = min(MAX_BACKOFF_S, watch.backoff_s * 2)

    def _restart(self, watch: _Watch) -> None:
        name = watch.child.name
        try:
            self._start(watch)
        except Exception as err:
            watch.restart_at = time.monotonic() + watch.backoff_s
            self.on_event(f"{name} failed to start ({err}); retrying in {watch.backoff_s:.1f} s")
            watch.backoff_s = min(MAX_BACKOFF_S, watch.backoff_s * 2)
            return
        watch.restarts += 1
        CHILD_RESTARTS.labels(name).inc()
        self.on_event(f"{name} restarted")
        if isinstance(watch.child, BrokerChild):
            self._broker_came_back()

    def _start(self, watch: _Watch) -> None:
        watch.child.start()
        watch.started_at = time.monotonic()
        watch.restart_at = None
        CHILD_UP.labels(watch.child.name).set(1)

    def _broker_came_back(self) -> None:
        """Everything that spoke to the old broker starts over on the new one. Open
        messages are made due first, so the restarted gateway re-drives them before it
        takes new ones (a conversation's replies stay in order)."""
        try:
            self.after_broker_restart()
        except Exception as err:
            self.on_event(f"could not re-drive open messages yet ({err}); the gateway will")
        for name in self._order:
            child = self._watches[name].child
            if isinstance(child, ProcessChild):
                child.stop_timeout_s, timeout = 3.0, child.stop_timeout_s
                child.stop()
                child.stop_timeout_s = timeout
                self._start(self._watches[name])
        self.on_event("workers and gateway restarted on the new broker")

    def stop(self, only: type | None = None) -> None:
        """Stop every child (of type `only`, if given), last started first; a failing
        stop does not keep the rest."""
        for name in reversed(self._order):
            if only is not None and not isinstance(self._watches[name].child, only):
                continue
            try:
                self._watches[name].child.stop()
            except Exception:
                log.exception("stopping %s failed", name)
            CHILD_UP.labels(name).set(0)


def create_topics(bootstrap_servers: str, topics: dict[str, int], timeout_s: float = 15.0) -> None:
    """Create the topics (name → partitions) that do not exist yet, before any client
    can create one by producing to it with the broker's default partition count."""
    host, _, port = bootstrap_servers.rpartition(":")
    wait_for_port(host, int(port), timeout_s)
    asyncio.run(asyncio.wait_for(declare_topics(bootstrap_servers, topics), timeout_s))


async def declare_topics(bootstrap_servers: str, topics: dict[str, int]) -> None:
    """Create the topics (name → partitions) that do not exist yet."""
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap_servers)
    await admin.start()
    try:
        existing = set(await admin.list_topics())
        missing = [NewTopic(n, p, 1) for n, p in topics.items() if n not in existing]
        if missing:
            try:
                await admin.create_topics(missing)
            except TopicAlreadyExistsError:  # another client was quicker: fine
                pass
    finally:
        await admin.close()
