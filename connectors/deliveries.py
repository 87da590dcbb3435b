"""Postgres record of each reply's delivery: the dispatcher's claim on it, and the status
the provider reported.

The `deliveries` row is the dispatcher's guard against sending twice (a reply sent is
never claimed again) and against losing a reply (one not confirmed sent is claimed
again, by the redelivered event or by another worker once the claim's lease ran out).
Migration 0006 keeps the status moving forward only (whoever writes it) and logs every
change in `delivery_events`.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum
from typing import Any

from psycopg_pool import AsyncConnectionPool

from schemas import DeliveryReceipt, Reply

DETAIL_CHARS = 500


class Claim(StrEnum):
    """What `claim` found."""

    CLAIMED = "claimed"  # ours to send now
    DONE = "done"  # sent already (a redelivered reply): do nothing
    BUSY = "busy"  # another worker holds an unexpired claim


@dataclass(frozen=True)
class ClaimResult:
    """A claim's outcome; `wait_s` is how long another worker's claim still runs."""

    claim: Claim
    wait_s: float = 0.0


async def claim(pool: AsyncConnectionPool, reply: Reply, lease_s: float) -> ClaimResult:
    """Record the reply (once) and claim it for sending for `lease_s` seconds."""
    async with pool.connection() as conn, conn.transaction():
        await conn.execute(
            "INSERT INTO deliveries (reply_id, conversation_id, tenant_id, channel, status)"
            " VALUES (%s, %s, %s, %s, 'queued') ON CONFLICT DO NOTHING",
            (reply.reply_id, reply.conversation_id, reply.tenant_id, reply.channel.value),
        )
        cur = await conn.execute(
            "UPDATE deliveries SET status = 'sending', attempts = attempts + 1,"
            " claimed_until = now() + make_interval(secs => %s), updated_at = now()"
            " WHERE reply_id = %s AND (status IN ('queued', 'failed')"
            "   OR (status = 'sending' AND claimed_until < now()))"
            " RETURNING reply_id",
            (lease_s, reply.reply_id),
        )
        if await cur.fetchone() is not None:
            return ClaimResult(Claim.CLAIMED)
        cur = await conn.execute(
            "SELECT status, GREATEST(0, EXTRACT(EPOCH FROM claimed_until - now())) AS wait_s"
            " FROM deliveries WHERE reply_id = %s",
            (reply.reply_id,),
        )
        row: dict[str, Any] | None = await cur.fetchone()  # type: ignore[assignment]
    if row is not None and row["status"] == "sending":
        return ClaimResult(Claim.BUSY, float(row["wait_s"] or 0.0))
    return ClaimResult(Claim.DONE)


async def release(pool: AsyncConnectionPool, reply_id: str, detail: str) -> None:
    """Give a claim back after a failed attempt (another attempt will claim it again)."""
    await _set_status(pool, reply_id, "queued", detail, only_from="sending")


async def mark_failed(pool: AsyncConnectionPool, reply_id: str, detail: str) -> None:
    """The dispatcher gave up on the reply (it is dead-lettered)."""
    await _set_status(pool, reply_id, "failed", detail)


async def _set_status(
    pool: AsyncConnectionPool, reply_id: str, status: str, detail: str, only_from: str = ""
) -> None:
    async with pool.connection() as conn:
        await conn.execute(
            "UPDATE deliveries SET status = %s, claimed_until = NULL, detail = %s,"
            " updated_at = now() WHERE reply_id = %s AND (%s = '' OR status = %s)",
            (status, detail[:DETAIL_CHARS], reply_id, only_from, only_from),
        )


async def apply_receipt(pool: AsyncConnectionPool, receipt: DeliveryReceipt) -> str | None:
    """Record a provider's status for one of our replies, found by reply id or by the
    provider's message id; returns our reply id, or None when the message is not ours."""
    async with pool.connection() as conn:
        cur = await conn.execute(
            "UPDATE deliveries SET status = %s, detail = %s, updated_at = now(),"
            " provider_message_id = COALESCE(provider_message_id, %s)"
            " WHERE reply_id = (SELECT reply_id FROM deliveries WHERE reply_id = %s"
            "   OR (channel = %s AND provider_message_id = %s) LIMIT 1)"
            " RETURNING reply_id",
            (
                receipt.status.value,
                receipt.detail[:DETAIL_CHARS],
                receipt.provider_message_id,
                receipt.reply_id,
                receipt.channel.value,
                receipt.provider_message_id,
            ),
        )
        row: dict[str, Any] | None = await cur.fetchone()  # type: ignore[assignment]
    return str(row["reply_id"]) if row else None


@dataclass(frozen=True)
class StatusChange:
    """One step of a reply's delivery."""

    status: str
    detail: str
    at: datetime


@dataclass(frozen=True)
class Delivery:
    """A reply's delivery as the API shows it."""

    reply_id: str
    channel: str
    status: str
    provider_message_id: str | None
    attempts: int
    detail: str
    updated_at: datetime
    history: list[StatusChange]


async def conversation_deliveries(
    pool: AsyncConnectionPool, conversation_id: str, reply_id: str | None = None
) -> list[Delivery]:
    """The conversation's replies (or the one `reply_id`) with their status timelines,
    oldest first."""
    async with pool.connection() as conn:
        cur = await conn.execute(
            "SELECT d.reply_id, d.channel, d.status, d.provider_message_id, d.attempts,"
            " d.detail, d.updated_at, e.status AS step, e.detail AS step_detail,"
            " e.recorded_at FROM deliveries d"
            " LEFT JOIN delivery_events e ON e.reply_id = d.reply_id"
            " WHERE d.conversation_id = %s AND (%s::text IS NULL OR d.reply_id = %s)"
            " ORDER BY d.created_at, d.reply_id, e.id",
            (conversation_id, reply_id, reply_id),
        )
        rows: list[dict[str, Any]] = await cur.fetchall()  # type: ignore[assignment]
    found: dict[str, Delivery] = {}
    for row in rows:
        delivery = found.setdefault(
            row["reply_id"],
            Delivery(
                reply_id=row["reply_id"],
                channel=row["channel"],
                status=row["status"],
                provider_message_id=row["provider_message_id"],
                attempts=row["attempts"],
                detail=row["detail"],
                updated_at=row["updated_at"],
                history=[],
            ),
        )
        if row["step"] is not None:
            delivery.history.append(
                StatusChange(row["step"], row["step_detail"], row["recorded_at"])
            )
    return list(found.values())
