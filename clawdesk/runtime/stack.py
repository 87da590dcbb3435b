"""The whole system on embedded parts, as `clawdesk up` runs it (and the tests)."""

from __future__ import annotations

import asyncio
import logging
import os
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import httpx

from agents import STAGE_NAMES, stage
from clawdesk.runtime.broker import EmbeddedBroker
from clawdesk.runtime.stores import EmbeddedPostgres, EmbeddedRedis
from clawdesk.runtime.supervisor import (
    BrokerChild,
    PostgresChild,
    ProcessChild,
    RedisChild,
    Supervisor,
    create_topics,
)
from clawdesk.settings import AppSettings, ConnectionSettings
from clawdesk.storage.db import apply_migrations

log = logging.getLogger(__name__)


@dataclass
class Infrastructure:
    """Broker, Postgres and Redis: configured ones where URLs are set, else embedded."""

    data_dir: Path
    conn: ConnectionSettings
    bootstrap_servers: str = ""
    database_url: str = ""
    redis_url: str = ""
    fresh_broker: bool = False
    # The parts started here (None where a URL was configured), for the supervisor.
    broker: EmbeddedBroker | None = None
    postgres: EmbeddedPostgres | None = None
    redis: EmbeddedRedis | None = None
    _stoppers: list[object] = field(default_factory=list)

    def start(self) -> Infrastructure:
        """Start whatever is not configured, and apply the database migrations."""
        self.data_dir.mkdir(parents=True, exist_ok=True)
        self.bootstrap_servers = self.conn.kafka_bootstrap_servers
        if not self.bootstrap_servers:
            broker = EmbeddedBroker(log_path=self.data_dir / "tansu.log").start()
            self._stoppers.append(broker)
            self.broker = broker
            self.bootstrap_servers = broker.bootstrap_servers
            self.fresh_broker = True
        self.database_url = self.conn.database_url
        if not self.database_url:
            pg = EmbeddedPostgres(self.data_dir / "postgres")
            self.database_url = pg.start()
            self._stoppers.append(pg)
            self.postgres = pg
        self.redis_url = self.conn.redis_url
        if not self.redis_url:
            redis = EmbeddedRedis(self.data_dir / "redis" / "clawdesk.storage.db")
            self.redis_url = redis.start()
            self._stoppers.append(redis)
            self.redis = redis
        apply_migrations(self.database_url)
        return self

    def env(self) -> dict[str, str]:
        """Environment variables that point a child process at these parts."""
        return {
            "KAFKA_BOOTSTRAP_SERVERS": self.bootstrap_servers,
            "DATABASE_URL": self.database_url,
            "REDIS_URL": self.redis_url,
        }

    def stop(self) -> None:
        """Stop what was started here, in reverse order."""
        for part in reversed(self._stoppers):
            try:
                part.stop()  # type: ignore[attr-defined]
            except Exception:
                log.exception("stopping %s failed", type(part).__name__)
        self._stoppers.clear()


def reset_worker_state(worker_dir: Path) -> None:
    """Drop a worker's local table state. Needed when the broker is new: its changelog
    topics are gone (Tansu keeps topics in memory), so the old state no longer matches."""
    shutil.rmtree(worker_dir / "faust", ignore_errors=True)


def worker_argv() -> list[str]:
    """The command line of one Faust worker (its stage comes from `CLAWDESK_STAGE`)."""
    return [
        sys.executable,
        "-m",
        "faust",
        "-A",
        "clawdesk.app",
        "worker",
        "-l",
        "info",
        "--without-web",
    ]


def parse_workers(text: str) -> dict[str, int]:
    """Worker counts by stage from `clawdesk up --workers`.

    `2` is two single-process workers, every stage in one group (key ""); `nlu=2,retrieve=1`
    runs one consumer group per stage: the named stages with those counts, every other
    stage with one worker (`dispatch=0` leaves a stage out).
    """
    text = text.strip()
    if text.isdigit():
        return {"": int(text)}
    layout = dict.fromkeys(STAGE_NAMES, 1)
    for part in filter(None, (p.strip() for p in text.split(","))):
        name, sep, count = part.partition("=")
        if not sep or not count.strip().isdigit():
            raise ValueError(f"expected stage=count, got {part!r}")
        stage(name.strip())
        layout[name.strip()] = int(count)
    return {name: n for name, n in layout.items() if n > 0}


def metrics_ports(settings: AppSettings) -> Iterator[int]:
    """Metrics ports for the workers of one host: consecutive from `metrics_port`, past
    the supervisor's own (0s when metrics are off)."""
    port = settings.metrics_port
    while True:
        if not port:
            yield 0
            continue
        if port == settings.supervisor_metrics_port:
            port += 1
        yield port
        port += 1


def stage_workers(
    settings: AppSettings,
    layout: dict[str, int],
    env: Callable[[], dict[str, str]],
    before_start: Callable[[str, Path], None] | None = None,
) -> list[ProcessChild]:
    """One supervised worker process per stage instance of `layout` (see
    `parse_workers`), each with its own data directory and metrics port."""
    logs = settings.data_dir / "logs"
    ports = metrics_ports(settings)
    children = []
    for name, count in layout.items():
        for i in range(count):
            child_name = f"{name or 'worker'}-{i + 1}"
            worker_dir = settings.data_dir / "workers" / child_name
            worker_dir.mkdir(parents=True, exist_ok=True)
            extra = {
                "CLAWDESK_DATA_DIR": str(worker_dir),
                "CLAWDESK_STAGE": name,
                "CLAWDESK_METRICS_PORT": str(next(ports)),
            }

            def child_env(extra: dict[str, str] = extra) -> dict[str, str]:
                return {**env(), **extra}

            def prepare(child_name: str = child_name, worker_dir: Path = worker_dir) -> None:
                if before_start is not None:
                    before_start(child_name, worker_dir)

            children.append(
                ProcessChild(
                    child_name, worker_argv, child_env, logs / f"{child_name}.log", prepare
                )
            )
    return children


def gateway_argv() -> list[str]:
    """The command line of the HTTP gateway."""
    return [sys.executable, "-m", "clawdesk.cli", "gateway"]


def gateway_address_env(settings: AppSettings) -> dict[str, str]:
    """The environment that makes the gateway listen where `settings` says it does."""
    return {
        "CLAWDESK_GATEWAY_HOST": settings.gateway_host,
        "CLAWDESK_GATEWAY_PORT": str(settings.gateway_port),
    }


def topic_partitions(settings: AppSettings) -> dict[str, int]:
    """Every pipeline topic and its partition count."""
    from topics import ALL_TOPICS

    return {spec.name(settings): spec.partitions(settings) for spec in ALL_TOPICS}


@dataclass
class Stack:
    """`clawdesk up`'s processes under a supervisor: embedded services, workers, gateway."""

    settings: AppSettings
    infra: Infrastructure
    supervisor: Supervisor
    workers: list[ProcessChild]
    gateway: ProcessChild

    def gateway_ready(self, timeout_s: float = 1.0) -> bool:
        """Whether the gateway's /ready says a message sent now is answered now (it
        listens, and a worker has its models and knowledge base loaded)."""
        url = f"http://{self.settings.gateway_host}:{self.settings.gateway_port}/ready"
        try:
            return httpx.get(url, timeout=timeout_s).status_code == 200
        except httpx.HTTPError:
            return False

    def ready_workers(self) -> list[str]:
        """The workers whose current run has logged that its services are ready."""
        return [w.name for w in self.workers if '"services ready"' in w.log_since_start()]

    def stop(self) -> None:
        """Stop the processes, then the embedded services (stopped by their owner, which
        also releases what it holds for them)."""
        self.supervisor.stop(only=ProcessChild)
        self.infra.stop()


def start_stack(
    settings: AppSettings,
    infra: Infrastructure,
    workers: int | dict[str, int],
    on_event: Callable[[str], None],
    extra_env: dict[str, str] | None = None,
) -> Stack:
    """Start the workers (a count of single-process workers, or counts by stage as
    `parse_workers` reads them) and the gateway over `infra`, all supervised."""
    layout = {"": workers} if isinstance(workers, int) else workers
    logs = settings.data_dir / "logs"
    epoch = [0]  # bumped each time the broker starts afresh (its topics are gone)
    seen: dict[str, int] = {}

    # Workers run with data dirs of their own, but the files they store must be where
    # the gateway (the inbox) reads them: one store for the stack unless one is set.
    shared = {}
    if not settings.attachment_store_url:
        store = (settings.data_dir / "attachments").resolve()
        shared["CLAWDESK_ATTACHMENT_STORE_URL"] = store.as_uri()

    def env() -> dict[str, str]:
        return {**infra.env(), **shared, **(extra_env or {})}

    def gateway_env() -> dict[str, str]:
        # Where `Stack.gateway_ready` probes: the gateway must listen there, whatever
        # the environment says.
        return {**env(), **gateway_address_env(settings)}

    def redrive_now() -> None:
        asyncio.run(_redrive_now(infra.database_url))

    supervisor = Supervisor(on_event=on_event, after_broker_restart=redrive_now)
    if infra.broker is not None:

        def recreate_topics() -> None:
            epoch[0] += 1
            create_topics(infra.bootstrap_servers, topic_partitions(settings))

        create_topics(infra.bootstrap_servers, topic_partitions(settings))
        supervisor.add(BrokerChild(infra.broker, on_start=recreate_topics), start=False)
    if infra.postgres is not None:
        supervisor.add(PostgresChild(infra.postgres), start=False)
    if infra.redis is not None:
        supervisor.add(RedisChild(infra.redis), start=False)
    fresh = infra.fresh_broker

    def before_start(name: str, worker_dir: Path) -> None:
        # Table state that outlived its broker's changelog no longer matches it.
        if seen.get(name, -1 if fresh else 0) != epoch[0]:
            reset_worker_state(worker_dir)
        seen[name] = epoch[0]

    children = stage_workers(settings, layout, env, before_start)
    for child in children:
        supervisor.add(child)
    gateway = ProcessChild(
        "gateway", gateway_argv, gateway_env, logs / "gateway.log", stop_timeout_s=8.0
    )
    supervisor.add(gateway)
    return Stack(settings, infra, supervisor, children, gateway)


async def _redrive_now(database_url: str) -> None:
    from clawdesk.storage import inbound_log
    from clawdesk.storage.db import open_pool

    pool = await open_pool(database_url, max_size=1)
    try:
        await inbound_log.redrive_all_now(pool)
    finally:
        await pool.close()


def spawn_worker(
    name: str, settings: AppSettings, env: dict[str, str], log_path: Path | None = None
) -> subprocess.Popen[bytes]:
    """Start a Faust worker process with its own data directory."""
    worker_dir = settings.data_dir / "workers" / name
    worker_dir.mkdir(parents=True, exist_ok=True)
    child_env = {**os.environ, **env, "CLAWDESK_DATA_DIR": str(worker_dir)}
    out = open(log_path, "ab") if log_path else None
    return subprocess.Popen(
        worker_argv(),
        env=child_env,
        stdout=out,
        stderr=subprocess.STDOUT if out else None,
        start_new_session=True,
    )


def spawn_gateway(
    settings: AppSettings, env: dict[str, str], log_path: Path | None = None
) -> subprocess.Popen[bytes]:
    """Start the HTTP gateway process."""
    out = open(log_path, "ab") if log_path else None
    return subprocess.Popen(
        gateway_argv(),
        env={**os.environ, **env},
        stdout=out,
        stderr=subprocess.STDOUT if out else None,
        start_new_session=True,
    )


def stop_process(proc: subprocess.Popen[bytes], timeout: float = 15.0) -> None:
    """SIGTERM, wait, then SIGKILL: Faust commits offsets and leaves its group on TERM."""
    if proc.poll() is not None:
        return
    proc.send_signal(signal.SIGTERM)
    deadline = time.monotonic() + timeout
    while proc.poll() is None and time.monotonic() < deadline:
        time.sleep(0.1)
    if proc.poll() is None:
        proc.kill()
        proc.wait()
