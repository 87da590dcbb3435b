"""The whole system on embedded parts, as `clawdesk up` runs it (and the tests)."""

from __future__ import annotations

import logging
import os
import shutil
import signal
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

from clawdesk.db import apply_migrations
from clawdesk.runtime.broker import EmbeddedBroker
from clawdesk.runtime.stores import EmbeddedPostgres, EmbeddedRedis
from clawdesk.settings import AppSettings, ConnectionSettings

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
    _stoppers: list[object] = field(default_factory=list)

    def start(self) -> Infrastructure:
        """Start whatever is not configured, and apply the database migrations."""
        self.data_dir.mkdir(parents=True, exist_ok=True)
        self.bootstrap_servers = self.conn.kafka_bootstrap_servers
        if not self.bootstrap_servers:
            broker = EmbeddedBroker(log_path=self.data_dir / "tansu.log").start()
            self._stoppers.append(broker)
            self.bootstrap_servers = broker.bootstrap_servers
            self.fresh_broker = True
        self.database_url = self.conn.database_url
        if not self.database_url:
            pg = EmbeddedPostgres(self.data_dir / "postgres")
            self.database_url = pg.start()
            self._stoppers.append(pg)
        self.redis_url = self.conn.redis_url
        if not self.redis_url:
            redis = EmbeddedRedis(self.data_dir / "redis" / "clawdesk.db")
            self.redis_url = redis.start()
            self._stoppers.append(redis)
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


def spawn_worker(
    name: str, settings: AppSettings, env: dict[str, str], log_path: Path | None = None
) -> subprocess.Popen[bytes]:
    """Start a Faust worker process with its own data directory."""
    worker_dir = settings.data_dir / "workers" / name
    worker_dir.mkdir(parents=True, exist_ok=True)
    child_env = {**os.environ, **env, "CLAWDESK_DATA_DIR": str(worker_dir)}
    out = open(log_path, "ab") if log_path else None
    return subprocess.Popen(
        [
            sys.executable,
            "-m",
            "faust",
            "-A",
            "clawdesk.app",
            "worker",
            "-l",
            "info",
            "--without-web",
        ],
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
        [sys.executable, "-m", "clawdesk.cli", "gateway"],
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
