"""Postgres records of skill runs: the audit log, the idempotency store, the allow-list.

The idempotency protocol, per key: `claim_idempotency` before calling a provider;
`store_result` after a final outcome (a replay then gets it back); `release_idempotency`
after a failure worth retrying (the next attempt may run). A claim left by a worker
that died is taken over once older than the lease.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Protocol

from psycopg.types.json import Jsonb
from psycopg_pool import AsyncConnectionPool

DEFAULT_LEASE_S = 300.0


@dataclass(frozen=True)
class Claim:
    """The state of an idempotency key: ours to run, already done, or someone else's."""

    acquired: bool
    result: dict[str, Any] | None = None


@dataclass(frozen=True)
class AuditEntry:
    """One row of `skill_audit`."""

    tenant_id: str
    conversation_id: str
    skill: str
    arguments: dict[str, Any]
    idempotency_key: str | None
    status: str
    result: dict[str, Any] | None = None
    error: str | None = None
    replayed: bool = False
    duration_ms: int | None = None


async def record_audit(pool: AsyncConnectionPool, entry: AuditEntry) -> int:
    """Append an audit row; return its id."""
    async with pool.connection() as conn:
        cur = await conn.execute(
            "INSERT INTO skill_audit (tenant_id, conversation_id, skill, arguments,"
            " idempotency_key, status, result, error, replayed, duration_ms)"
            " VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s, %s) RETURNING id",
            (
                entry.tenant_id,
                entry.conversation_id,
                entry.skill,
                Jsonb(entry.arguments),
                entry.idempotency_key,
                entry.status,
                None if entry.result is None else Jsonb(entry.result),
                entry.error,
                entry.replayed,
                entry.duration_ms,
            ),
        )
        row = await cur.fetchone()
    assert row is not None
    return int(row["id"] if isinstance(row, dict) else row[0])


async def claim_idempotency(
    pool: AsyncConnectionPool, key: str, lease_s: float = DEFAULT_LEASE_S
) -> Claim:
    """Claim `key`; or get the result stored under it; or learn another worker holds it."""
    async with pool.connection() as conn, conn.transaction():
        cur = await conn.execute(
            "INSERT INTO skill_idempotency (idempotency_key) VALUES (%s)"
            " ON CONFLICT DO NOTHING RETURNING idempotency_key",
            (key,),
        )
        if await cur.fetchone() is not None:
            return Claim(acquired=True)
        # Take over a claim whose worker died (no result after the lease).
        cur = await conn.execute(
            "UPDATE skill_idempotency SET claimed_at = now()"
            " WHERE idempotency_key = %s AND result IS NULL"
            " AND claimed_at < now() - make_interval(secs => %s) RETURNING idempotency_key",
            (key, lease_s),
        )
        if await cur.fetchone() is not None:
            return Claim(acquired=True)
        cur = await conn.execute(
            "SELECT result FROM skill_idempotency WHERE idempotency_key = %s", (key,)
        )
        row = await cur.fetchone()
    result = _column(row, "result")
    return Claim(acquired=False, result=result)


async def store_result(pool: AsyncConnectionPool, key: str, result: dict[str, Any]) -> None:
    """Keep the final result under `key` for replays."""
    async with pool.connection() as conn:
        await conn.execute(
            "UPDATE skill_idempotency SET result = %s, completed_at = now()"
            " WHERE idempotency_key = %s",
            (Jsonb(result), key),
        )


async def release_idempotency(pool: AsyncConnectionPool, key: str) -> None:
    """Give up an unfinished claim so that a later attempt may run."""
    async with pool.connection() as conn:
        await conn.execute(
            "DELETE FROM skill_idempotency WHERE idempotency_key = %s AND result IS NULL", (key,)
        )


async def allowed_skills(pool: AsyncConnectionPool, tenant_id: str) -> frozenset[str]:
    """The skills enabled for a tenant (its allow-list)."""
    async with pool.connection() as conn:
        cur = await conn.execute(
            "SELECT skill FROM tenant_skills WHERE tenant_id = %s AND enabled", (tenant_id,)
        )
        rows = await cur.fetchall()
    return frozenset(str(_column(r, "skill")) for r in rows)


def _column(row: Any, name: str) -> Any:
    if row is None:
        return None
    return row[name] if isinstance(row, dict) else row[0]


class AuditLog(Protocol):
    """Where the runner records runs and keeps idempotent results."""

    async def record(self, entry: AuditEntry) -> None: ...
    async def claim(self, key: str) -> Claim: ...
    async def store(self, key: str, result: dict[str, Any]) -> None: ...
    async def release(self, key: str) -> None: ...


@dataclass
class PostgresAudit:
    """`AuditLog` on the tables of migration 0002."""

    pool: AsyncConnectionPool
    lease_s: float = DEFAULT_LEASE_S

    async def record(self, entry: AuditEntry) -> None:
        await record_audit(self.pool, entry)

    async def claim(self, key: str) -> Claim:
        return await claim_idempotency(self.pool, key, self.lease_s)

    async def store(self, key: str, result: dict[str, Any]) -> None:
        await store_result(self.pool, key, result)

    async def release(self, key: str) -> None:
        await release_idempotency(self.pool, key)


@dataclass
class MemoryAudit:
    """`AuditLog` in memory, for unit tests of the stages (no Postgres)."""

    entries: list[AuditEntry] = field(default_factory=list)
    results: dict[str, dict[str, Any] | None] = field(default_factory=dict)

    async def record(self, entry: AuditEntry) -> None:
        self.entries.append(entry)

    async def claim(self, key: str) -> Claim:
        if key not in self.results:
            self.results[key] = None
            return Claim(acquired=True)
        return Claim(acquired=False, result=self.results[key])

    async def store(self, key: str, result: dict[str, Any]) -> None:
        self.results[key] = result

    async def release(self, key: str) -> None:
        if self.results.get(key, {}) is None:
            del self.results[key]
