"""A transient failure parks the message in the inbound log (re-driven later) instead of
dead-lettering it; a permanent one dead-letters it and settles its message."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import psycopg
import pytest
from psycopg_pool import AsyncConnectionPool

from clawdesk import services
from clawdesk.settings import AppSettings
from clawdesk.storage import db, inbound_log
from schemas import Channel, InboundMessage


@pytest.fixture()
async def pg_services(database_url: str) -> AsyncIterator[services.Services]:
    pool = await db.open_pool(database_url)
    settings = AppSettings(_env_file=None, max_attempts=2, stage_timeout_s=2.0)  # type: ignore[call-arg]
    svc = services.Services(settings=settings, pool=pool, kb=None, nlu=None, shop=None, cache=None)
    services.install(svc)
    yield svc
    await pool.close()


@pytest.fixture()
def dead_letters(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    from agents import guard

    letters: list[str] = []

    async def dead_letter(stage: str, raw: bytes, error: BaseException, attempts: int) -> None:
        letters.append(f"{stage}: {type(error).__name__}")

    monkeypatch.setattr(guard, "dead_letter", dead_letter)
    return letters


async def logged_message(pool: AsyncConnectionPool) -> InboundMessage:
    msg = InboundMessage(
        conversation_id="c1",
        tenant_id="demo",
        channel=Channel.WEB,
        channel_message_id="m1",
        customer_id="c1",
        text="hi",
    )
    await inbound_log.record(pool, [msg], inbound_log.RedrivePolicy(first_s=3600))
    return msg


async def row(pool: AsyncConnectionPool, event_id: str) -> dict[str, Any]:
    async with pool.connection() as conn:
        cur = await conn.execute(
            "SELECT outcome, parked_stage, parked_reason, next_redrive_at - now() < interval"
            " '1 minute' AS soon FROM inbound_log WHERE event_id = %s",
            (event_id,),
        )
        found: dict[str, Any] = await cur.fetchone()  # type: ignore[assignment]
    return found


async def test_a_database_outage_parks_the_message_instead_of_dead_lettering(
    pg_services: services.Services, dead_letters: list[str]
) -> None:
    from agents import guard

    msg = await logged_message(pg_services.pool)

    async def work(raw: bytes) -> None:
        raise psycopg.OperationalError("the server closed the connection")

    assert not await guard.process("nlu", msg.to_bytes(), work)

    assert dead_letters == []
    found = await row(pg_services.pool, msg.event_id)
    assert found["outcome"] is None and found["parked_stage"] == "nlu"
    assert "OperationalError" in found["parked_reason"] and found["soon"]


async def test_a_bug_dead_letters_and_settles_the_message(
    pg_services: services.Services, dead_letters: list[str]
) -> None:
    from agents import guard

    msg = await logged_message(pg_services.pool)

    async def work(raw: bytes) -> None:
        raise ValueError("cannot ever work")

    assert not await guard.process("skills", msg.to_bytes(), work)

    assert dead_letters == ["skills: ValueError"]
    assert (await row(pg_services.pool, msg.event_id))["outcome"] == "dead_lettered"


async def test_a_transient_failure_of_an_unlogged_event_is_still_dead_lettered(
    pg_services: services.Services, dead_letters: list[str]
) -> None:
    from agents import guard

    async def work(raw: bytes) -> None:
        raise TimeoutError

    assert not await guard.process(
        "retrieve", b'{"event_id": "x", "channel_message_id": "m"}', work
    )

    assert dead_letters == ["retrieve: TimeoutError"]
