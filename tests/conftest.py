"""Shared fixtures: the real broker, Postgres and Redis for a test session."""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import psycopg
import pytest

from clawdesk.runtime.broker import EmbeddedBroker
from clawdesk.runtime.ports import port_open
from clawdesk.runtime.stores import EmbeddedPostgres, EmbeddedRedis

os.environ.setdefault("HF_HUB_OFFLINE", "1")
LOCAL_PG = "postgresql://127.0.0.1:5432/postgres"


@pytest.fixture(scope="session")
def broker(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A Tansu broker on a free port for this test session."""
    log = tmp_path_factory.mktemp("tansu") / "tansu.log"
    b = EmbeddedBroker(log_path=log).start()
    yield b.bootstrap_servers
    b.stop()


def _admin_pg_url() -> str | None:
    url = os.environ.get("DATABASE_URL")
    if url:
        return url
    return LOCAL_PG if port_open("127.0.0.1", 5432) else None


@pytest.fixture(scope="session")
def pg_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """An admin URL: DATABASE_URL, the machine's Postgres, or an embedded one."""
    url = _admin_pg_url()
    if url:
        yield url
        return
    pg = EmbeddedPostgres(tmp_path_factory.mktemp("pg"), database="postgres")
    yield pg.start()
    pg.stop()


@contextmanager
def fresh_database(pg_server: str) -> Iterator[str]:
    """A new, migrated database on the server, dropped on exit; its URL."""
    from clawdesk.storage.db import apply_migrations

    name = f"clawdesk_test_{uuid.uuid4().hex[:10]}"
    with psycopg.connect(pg_server, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    url = psycopg.conninfo.make_conninfo(pg_server, dbname=name)
    try:
        apply_migrations(url)
        yield url
    finally:
        with psycopg.connect(pg_server, autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@pytest.fixture()
def database_url(pg_server: str) -> Iterator[str]:
    """A fresh, migrated database for one test (dropped afterwards)."""
    with fresh_database(pg_server) as url:
        yield url


@pytest.fixture(scope="session")
def models_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """NLU models shared by the session's workers (integration tests and the short
    soak): the demo model is trained once."""
    return tmp_path_factory.mktemp("models")


@pytest.fixture(scope="session")
def redis_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """REDIS_URL, the machine's Redis, or an embedded one."""
    url = os.environ.get("REDIS_URL")
    if url:
        yield url
    elif port_open("127.0.0.1", 6379):
        yield "redis://127.0.0.1:6379/15"
    else:
        r = EmbeddedRedis(Path(tmp_path_factory.mktemp("redis")) / "r.db")
        yield r.start()
        r.stop()
