"""Readiness probes: does the broker answer, does Postgres answer, does a worker answer
now (its models loaded or trained and its knowledge base embedded)."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable

from psycopg_pool import AsyncConnectionPool
from redis.asyncio import Redis

from clawdesk.gateway.state import GatewayState, InboundProducer
from clawdesk.settings import connection_settings
from clawdesk.storage.db import ready_workers

log = logging.getLogger(__name__)

PROBE_TIMEOUT_S = 2.0


async def check_broker(producer: InboundProducer) -> None:
    """One metadata round trip over the producer's connections (raises if none answers)."""
    await producer.client.fetch_all_metadata()


async def check_database(pool: AsyncConnectionPool, timeout_s: float = PROBE_TIMEOUT_S) -> None:
    """`SELECT 1` on a pooled connection (raises if Postgres does not answer)."""
    async with pool.connection(timeout=timeout_s) as conn:
        await conn.execute("SELECT 1")


async def check_workers(pool: AsyncConnectionPool, stale_s: float) -> None:
    """Raise unless a worker said recently that it answers now (see agents/startup.py)."""
    if await ready_workers(pool, stale_s) == 0:
        raise NoReadyWorker("no worker has said it answers now")


class NoReadyWorker(RuntimeError):
    """Every worker is still starting (loading or training models) or none runs."""


async def check_redis(redis_url: str, timeout_s: float = PROBE_TIMEOUT_S) -> None:
    """PING Redis (raises if it does not answer). The gateway runs without Redis (the
    rate limiter fails open), so a failure here is reported but is not fatal."""
    client = Redis.from_url(redis_url, socket_timeout=timeout_s, socket_connect_timeout=timeout_s)
    try:
        await client.ping()
    finally:
        await client.aclose()


async def _probe(name: str, check: Awaitable[None], timeout_s: float) -> str:
    try:
        async with asyncio.timeout(timeout_s):
            await check
    except Exception as err:
        log.warning("readiness check failed", extra={"check": name, "error": repr(err)})
        # Only the error's type: the message may carry hosts or credentials.
        return f"error: {type(err).__name__}"
    return "ok"


async def readiness(state: GatewayState, timeout_s: float = PROBE_TIMEOUT_S) -> dict[str, str]:
    """Each dependency's status, "ok" or "error: <kind>", probed concurrently."""
    broker, database = await asyncio.gather(
        _probe("broker", check_broker(state.producer), timeout_s),
        _probe("database", check_database(state.pool, timeout_s), timeout_s),
    )
    replies = "error: stopped" if state.replies_task.done() else "ok"
    checks = {"broker": broker, "database": database, "replies": replies}
    if state.settings.ready_requires_worker:
        stale_s = state.settings.worker_ready_stale_s
        checks["workers"] = await _probe("workers", check_workers(state.pool, stale_s), timeout_s)
    redis_url = connection_settings().redis_url
    if redis_url:
        checks["redis"] = await _probe("redis", check_redis(redis_url, timeout_s), timeout_s)
    if state.redrive_task is not None:
        checks["redrive"] = "error: stopped" if state.redrive_task.done() else "ok"
    return checks


# Degraded but serving: the gateway still takes messages without these.
OPTIONAL_CHECKS = frozenset({"redis"})
