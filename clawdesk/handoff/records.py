"""Postgres side of handoff tickets: one row per handoff event, a small state machine.

    pending ──created──► created
       │  └─transient failure─► pending (attempts+1, next_attempt_at = now + backoff)
       ├──refused for good──► failed
       └──no ticket system──► not_configured ──a worker starts with one──► pending

A worker claims a due row by moving its `next_attempt_at` a lease into the future
(`FOR UPDATE SKIP LOCKED`), so two workers never try the same ticket at once and a
claim of a worker that died runs out by itself.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum
from typing import Any

from psycopg_pool import AsyncConnectionPool

from schemas import Handoff


class TicketStatus(StrEnum):
    """Where a handoff's ticket stands."""

    PENDING = "pending"
    CREATED = "created"
    FAILED = "failed"
    NOT_CONFIGURED = "not_configured"


@dataclass(frozen=True)
class TicketRow:
    """A handoff and the state of its ticket."""

    event_id: str
    conversation_id: str
    tenant_id: str
    channel: str
    customer_id: str
    reason: str
    last_message: str
    handed_off_at: datetime
    status: TicketStatus
    attempts: int
    next_attempt_at: datetime
    ticket_id: str | None
    ticket_url: str | None
    last_error: str

    @classmethod
    def of(cls, row: dict[str, Any]) -> TicketRow:
        """The row as the queries below return it (dict rows)."""
        fields = {name: row[name] for name in cls.__dataclass_fields__}
        fields["status"] = TicketStatus(fields["status"])
        return cls(**fields)


_COLUMNS = (
    "event_id, conversation_id, tenant_id, channel, customer_id, reason, last_message,"
    " handed_off_at, status, attempts, next_attempt_at, ticket_id, ticket_url, last_error"
)


async def record_handoff(
    pool: AsyncConnectionPool, handoff: Handoff, lease_s: float
) -> TicketRow | None:
    """Record a handoff once per event id, claimed by the caller for `lease_s`.

    The conversation is marked as owned by a human in the same transaction, so it is
    in the inbox whatever happens to the ticket. Returns None for a handoff recorded
    before (a redelivered event), which must not take a handed-back conversation again.
    """
    async with pool.connection() as conn, conn.transaction():
        cur = await conn.execute(
            "INSERT INTO handoff_tickets (event_id, conversation_id, tenant_id, channel,"
            " customer_id, reason, last_message, handed_off_at, next_attempt_at)"
            " VALUES (%s, %s, %s, %s, %s, %s, %s, %s, now() + make_interval(secs => %s))"
            f" ON CONFLICT (event_id) DO NOTHING RETURNING {_COLUMNS}",
            (
                handoff.event_id,
                handoff.conversation_id,
                handoff.tenant_id,
                handoff.channel.value,
                handoff.customer_id,
                handoff.reason,
                handoff.last_message,
                handoff.occurred_at,
                lease_s,
            ),
        )
        row: dict[str, Any] | None = await cur.fetchone()  # type: ignore[assignment]
        if row is None:
            return None
        await conn.execute(
            "UPDATE conversations SET status = 'human', updated_at = now() WHERE id = %s",
            (handoff.conversation_id,),
        )
    return TicketRow.of(row)


async def claim_due(pool: AsyncConnectionPool, limit: int, lease_s: float) -> list[TicketRow]:
    """Up to `limit` pending tickets whose retry is due, claimed for `lease_s`."""
    async with pool.connection() as conn, conn.transaction():
        cur = await conn.execute(
            "UPDATE handoff_tickets SET next_attempt_at = now() + make_interval(secs => %s),"
            " updated_at = now() WHERE event_id IN ("
            "  SELECT event_id FROM handoff_tickets"
            "  WHERE status = 'pending' AND next_attempt_at <= now()"
            "  ORDER BY next_attempt_at LIMIT %s FOR UPDATE SKIP LOCKED)"
            f" RETURNING {_COLUMNS}",
            (lease_s, limit),
        )
        rows: list[dict[str, Any]] = await cur.fetchall()  # type: ignore[assignment]
    return [TicketRow.of(r) for r in rows]


async def reopen_not_configured(pool: AsyncConnectionPool, window_s: float) -> int:
    """Make the handoffs recorded without a ticket system (in the last `window_s`)
    pending and due now; returns how many. Older ones stay as they are: a ticket for a
    conversation long over would surprise the team more than help it."""
    async with pool.connection() as conn:
        cur = await conn.execute(
            "UPDATE handoff_tickets SET status = 'pending', next_attempt_at = now(),"
            " last_error = '', updated_at = now()"
            " WHERE status = 'not_configured'"
            " AND handed_off_at > now() - make_interval(secs => %s)",
            (window_s,),
        )
        return cur.rowcount


async def mark_created(
    pool: AsyncConnectionPool, event_id: str, ticket_id: str, ticket_url: str | None
) -> None:
    """The ticket exists."""
    async with pool.connection() as conn:
        await conn.execute(
            "UPDATE handoff_tickets SET status = 'created', attempts = attempts + 1,"
            " ticket_id = %s, ticket_url = %s, last_error = '', updated_at = now()"
            " WHERE event_id = %s",
            (ticket_id, ticket_url, event_id),
        )


async def mark_retry(pool: AsyncConnectionPool, event_id: str, delay_s: float, error: str) -> int:
    """A failed attempt to try again in `delay_s`; returns the attempts made so far."""
    async with pool.connection() as conn:
        cur = await conn.execute(
            "UPDATE handoff_tickets SET attempts = attempts + 1, last_error = %s,"
            " next_attempt_at = now() + make_interval(secs => %s), updated_at = now()"
            " WHERE event_id = %s AND status = 'pending' RETURNING attempts",
            (error[:2000], delay_s, event_id),
        )
        row: dict[str, Any] | None = await cur.fetchone()  # type: ignore[assignment]
    return int(row["attempts"]) if row else 0


async def mark_final(
    pool: AsyncConnectionPool, event_id: str, status: TicketStatus, error: str
) -> None:
    """No more attempts: refused for good (`failed`) or no ticket system (`not_configured`)."""
    attempted = 1 if status is TicketStatus.FAILED else 0
    async with pool.connection() as conn:
        await conn.execute(
            "UPDATE handoff_tickets SET status = %s, attempts = attempts + %s,"
            " last_error = %s, updated_at = now() WHERE event_id = %s",
            (status.value, attempted, error[:2000], event_id),
        )


async def fetch_ticket(pool: AsyncConnectionPool, event_id: str) -> TicketRow | None:
    """One handoff's ticket state."""
    async with pool.connection() as conn:
        cur = await conn.execute(
            f"SELECT {_COLUMNS} FROM handoff_tickets WHERE event_id = %s", (event_id,)
        )
        row: dict[str, Any] | None = await cur.fetchone()  # type: ignore[assignment]
    return TicketRow.of(row) if row else None


async def count_pending(pool: AsyncConnectionPool) -> int:
    """How many handoffs still wait for their ticket."""
    async with pool.connection() as conn:
        cur = await conn.execute(
            "SELECT count(*) AS n FROM handoff_tickets WHERE status = 'pending'"
        )
        row: dict[str, Any] | None = await cur.fetchone()  # type: ignore[assignment]
    return int(row["n"]) if row else 0


async def hand_back(pool: AsyncConnectionPool, conversation_id: str, decided_at: datetime) -> bool:
    """Give the conversation back to the bot, unless it was handed off again after the
    decision (a late or redelivered hand-back must not undo a newer handoff).

    Returns whether the hand-back stands.
    """
    async with pool.connection() as conn, conn.transaction():
        cur = await conn.execute(
            "SELECT 1 FROM handoff_tickets WHERE conversation_id = %s AND handed_off_at > %s"
            " LIMIT 1",
            (conversation_id, decided_at),
        )
        if await cur.fetchone() is not None:
            return False
        await conn.execute(
            "UPDATE conversations SET status = 'bot', updated_at = now()"
            " WHERE id = %s AND status = 'human'",
            (conversation_id,),
        )
    return True
