"""guard.dead_letter keeps every letter durable: in Postgres even when the topic
refuses it, in the worker's spool while Postgres is down, flushed by the timer later."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import psycopg
import pytest
from psycopg.rows import dict_row
from psycopg_pool import AsyncConnectionPool

from clawdesk import services
from clawdesk.runtime.ports import free_port
from clawdesk.settings import AppSettings
from clawdesk.storage import db, deadletters


class BrokerDown:
    """A dead-letter topic whose producer refuses every record."""

    def __init__(self) -> None:
        self.sent: list[bytes] = []

    async def send(self, *, key: bytes, value: bytes) -> object:
        self.sent.append(value)
        raise ConnectionError("broker down")


@pytest.fixture
def topic(monkeypatch: pytest.MonkeyPatch) -> BrokerDown:
    import agents.guard

    down = BrokerDown()
    # Where the guard looks it up (it imports the topic at its top).
    monkeypatch.setattr(agents.guard, "dead_letter_topic", down)
    return down


@pytest.fixture
async def pool(database_url: str) -> AsyncIterator[AsyncConnectionPool]:
    p = await db.open_pool(database_url, max_size=2)
    yield p
    await p.close()


@pytest.fixture
async def dead_pool() -> AsyncIterator[AsyncConnectionPool]:
    p = AsyncConnectionPool(
        f"postgresql://127.0.0.1:{free_port()}/none",
        min_size=0,
        max_size=1,
        open=False,
        timeout=1.0,
    )
    await p.open(wait=False)
    yield p
    await p.close()


def install(pool: AsyncConnectionPool, data_dir: Path) -> AppSettings:
    settings = AppSettings(_env_file=None, data_dir=data_dir, stage_timeout_s=3.0)  # type: ignore[call-arg]
    services.install(
        services.Services(settings=settings, pool=pool, kb=None, nlu=None, shop=None, cache=None)
    )
    return settings


def stored(database_url: str) -> list[dict[str, Any]]:
    with psycopg.connect(database_url, row_factory=dict_row) as conn:
        return conn.execute("SELECT stage, error, body FROM dead_letters ORDER BY id").fetchall()


async def test_a_letter_the_broker_refuses_is_still_stored_in_postgres(
    topic: BrokerDown, pool: AsyncConnectionPool, database_url: str, tmp_path: Path
) -> None:
    from agents import guard

    install(pool, tmp_path)

    await guard.dead_letter("ingest", b"\x00garbage", ValueError("not json"), 1)

    assert len(topic.sent) == 1
    assert stored(database_url) == [
        {"stage": "ingest", "error": "ValueError: not json", "body": b"\x00garbage"}
    ]


async def test_with_postgres_and_broker_down_the_letter_is_spooled_then_flushed(
    topic: BrokerDown,
    dead_pool: AsyncConnectionPool,
    pool: AsyncConnectionPool,
    database_url: str,
    tmp_path: Path,
) -> None:
    from agents import dead_letters, guard

    settings = install(dead_pool, tmp_path)
    await guard.dead_letter("retrieve", b"event", RuntimeError("no kb"), 3)
    assert deadletters.spool_of(settings).pending() == 1
    assert await dead_letters.flush_spool() == 0  # Postgres still down: kept, not raised

    install(pool, tmp_path)  # Postgres is back
    assert await dead_letters.flush_spool() == 1

    assert stored(database_url) == [
        {"stage": "retrieve", "error": "RuntimeError: no kb", "body": b"event"}
    ]
    assert deadletters.spool_of(settings).pending() == 0


def test_the_workers_producers_send_records_up_to_the_message_size_setting() -> None:
    from clawdesk.app import app
    from clawdesk.settings import app_settings

    assert app.conf.producer_max_request_size == app_settings().max_message_bytes
