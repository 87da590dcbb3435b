"""The shared pool bounds every statement."""

from __future__ import annotations

from clawdesk import db


async def test_pool_connections_carry_the_statement_timeout(database_url: str) -> None:
    pool = await db.open_pool(database_url, max_size=1)
    try:
        async with pool.connection() as conn:
            cur = await conn.execute("SHOW statement_timeout")
            row = await cur.fetchone()
            assert row == {"statement_timeout": f"{db.STATEMENT_TIMEOUT_MS // 1000}s"}
    finally:
        await pool.close()
