"""The shared pool bounds every statement."""

from __future__ import annotations

import pytest

from clawdesk.storage import db


async def test_pool_connections_carry_the_statement_timeout(database_url: str) -> None:
    pool = await db.open_pool(database_url, max_size=1)
    try:
        async with pool.connection() as conn:
            cur = await conn.execute("SHOW statement_timeout")
            row = await cur.fetchone()
            assert row == {"statement_timeout": f"{db.STATEMENT_TIMEOUT_MS // 1000}s"}
    finally:
        await pool.close()


def test_migrations_wait_for_postgres_then_give_up_with_its_error(
    caplog: pytest.LogCaptureFixture,
) -> None:
    import psycopg

    from clawdesk.runtime.ports import free_port
    from clawdesk.storage.db import apply_migrations_when_up

    dead = f"postgresql://127.0.0.1:{free_port()}/nothing?connect_timeout=1"
    with pytest.raises(psycopg.OperationalError):
        apply_migrations_when_up(dead, wait_s=1.5)

    assert "waiting for postgres" in caplog.text


def test_migrations_when_up_apply_at_once_on_a_live_server(database_url: str) -> None:
    from clawdesk.storage.db import apply_migrations_when_up

    assert apply_migrations_when_up(database_url, wait_s=5.0) == []  # the fixture migrated


async def test_a_later_customer_message_within_the_window_is_found(database_url: str) -> None:
    from datetime import UTC, datetime, timedelta

    from clawdesk.storage import db
    from schemas import Channel, InboundMessage

    pool = await db.open_pool(database_url)
    try:
        async with pool.connection() as conn:
            await conn.execute("INSERT INTO tenants (id, name) VALUES ('burst', 'Burst')")
        t0 = datetime(2026, 12, 3, 9, 0, tzinfo=UTC)
        for i, after_s in enumerate((0.0, 1.5)):
            msg = InboundMessage(
                conversation_id="c-burst",
                tenant_id="burst",
                channel=Channel.WEB,
                channel_message_id=f"m{i}",
                customer_id="visitor",
                text=["hi", "my order"][i],
                received_at=t0 + timedelta(seconds=after_s),
            )
            await db.record_inbound(pool, msg)
        assert await db.customer_wrote_after(pool, "c-burst", t0, 3.0)
        assert not await db.customer_wrote_after(pool, "c-burst", t0, 1.0)
        assert not await db.customer_wrote_after(pool, "c-burst", t0 + timedelta(seconds=1.5), 3.0)
    finally:
        await pool.close()
