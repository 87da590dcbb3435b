"""A worker counts as ready only once its services are built, until it goes silent,
restarts or stops: the gateway's /ready reads this."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import UTC, datetime
from typing import Any

import pytest

from clawdesk.storage import db

NOW = datetime(2026, 12, 3, 9, 0, tzinfo=UTC)


@pytest.fixture()
async def pool(database_url: str) -> AsyncIterator[Any]:
    pool = await db.open_pool(database_url)
    yield pool
    await pool.close()


async def test_a_beating_worker_is_ready_and_a_restarted_one_is_not(
    pool: Any, database_url: str
) -> None:
    assert await db.ready_workers(pool, stale_s=15) == 0
    await db.worker_heartbeat(pool, "host:/data/worker-1", NOW)
    await db.worker_heartbeat(pool, "host:/data/worker-2", None)  # still loading models
    assert await db.ready_workers(pool, stale_s=15) == 1

    # worker-1 restarts: its old beats stop counting before it has loaded anything.
    await db.mark_worker_starting(database_url, "host:/data/worker-1")
    assert await db.ready_workers(pool, stale_s=15) == 0

    await db.worker_heartbeat(pool, "host:/data/worker-1", NOW)
    assert await db.ready_workers(pool, stale_s=15) == 1
    await db.forget_worker(pool, "host:/data/worker-1")  # a clean stop
    assert await db.ready_workers(pool, stale_s=15) == 0


async def test_a_silent_worker_goes_stale(pool: Any) -> None:
    await db.worker_heartbeat(pool, "host:/data/worker-1", NOW)
    async with pool.connection() as conn:
        await conn.execute("UPDATE worker_heartbeats SET seen_at = now() - interval '20 seconds'")

    assert await db.ready_workers(pool, stale_s=15) == 0
    assert await db.ready_workers(pool, stale_s=30) == 1
