"""Readiness probes: does the broker answer, does Postgres answer."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable

from psycopg_pool import AsyncConnectionPool

from clawdesk.gateway.state import GatewayState, InboundProducer

log = logging.getLogger(__name__)

PROBE_TIMEOUT_S = 2.0


async def check_broker(producer: InboundProducer) -> None:
    """One metadata round trip over the producer's connections (raises if none answers)."""
    await producer.client.fetch_all_metadata()


async def check_database(pool: AsyncConnectionPool, timeout_s: float = PROBE_TIMEOUT_S) -> None:
    """`SELECT 1` on a pooled connection (raises if Postgres does not answer)."""
    async with pool.connection(timeout=timeout_s) as conn:
        await conn.execute("SELECT 1")


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
    return {"broker": broker, "database": database, "replies": replies}
