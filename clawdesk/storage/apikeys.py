"""Per-tenant API keys (the agent inbox signs in with one).

A key is `cdk_` + 256 random bits; only its SHA-256 is stored, so a database dump
reveals no usable key. A key is shown once, when it is created.
"""

from __future__ import annotations

import hashlib
import secrets
from dataclasses import dataclass
from typing import Any

import psycopg
from psycopg_pool import AsyncConnectionPool

KEY_PREFIX = "cdk_"


class UnknownTenant(LookupError):
    """No tenant has this id."""


@dataclass(frozen=True)
class TenantKey:
    """Who a valid key belongs to."""

    id: int
    tenant_id: str
    name: str


def generate() -> str:
    """A new random key."""
    return KEY_PREFIX + secrets.token_urlsafe(32)


def key_hash(key: str) -> str:
    """What the database stores for a key."""
    return hashlib.sha256(key.encode()).hexdigest()


async def authenticate(pool: AsyncConnectionPool, key: str) -> TenantKey | None:
    """The tenant of an unrevoked key, or None."""
    if not key.startswith(KEY_PREFIX):
        return None
    async with pool.connection() as conn:
        cur = await conn.execute(
            "SELECT id, tenant_id, name FROM tenant_api_keys"
            " WHERE key_hash = %s AND revoked_at IS NULL",
            (key_hash(key),),
        )
        row: dict[str, Any] | None = await cur.fetchone()  # type: ignore[assignment]
        if row is None:
            return None
        # At most one write a minute per key: the inbox polls every few seconds.
        await conn.execute(
            "UPDATE tenant_api_keys SET last_used_at = now() WHERE id = %s"
            " AND (last_used_at IS NULL OR last_used_at < now() - interval '1 minute')",
            (row["id"],),
        )
    return TenantKey(row["id"], row["tenant_id"], row["name"])


def create_key(database_url: str, tenant_id: str, name: str, *, replace: bool = False) -> str:
    """Create a key for the tenant and return it (the only time it is visible).

    With `replace`, the tenant's other keys of the same name are revoked first.
    """
    key = generate()
    with psycopg.connect(database_url) as conn, conn.transaction():
        if conn.execute("SELECT 1 FROM tenants WHERE id = %s", (tenant_id,)).fetchone() is None:
            raise UnknownTenant(tenant_id)
        if replace:
            _revoke(conn, tenant_id, name)
        conn.execute(
            "INSERT INTO tenant_api_keys (tenant_id, name, key_hash) VALUES (%s, %s, %s)",
            (tenant_id, name, key_hash(key)),
        )
    return key


def revoke_keys(database_url: str, tenant_id: str, name: str) -> int:
    """Revoke the tenant's keys of this name; return how many."""
    with psycopg.connect(database_url) as conn, conn.transaction():
        return _revoke(conn, tenant_id, name)


def _revoke(conn: psycopg.Connection[Any], tenant_id: str, name: str) -> int:
    cur = conn.execute(
        "UPDATE tenant_api_keys SET revoked_at = now()"
        " WHERE tenant_id = %s AND name = %s AND revoked_at IS NULL",
        (tenant_id, name),
    )
    return cur.rowcount
