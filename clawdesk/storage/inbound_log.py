"""The inbound log (Postgres): every acknowledged customer message until it is settled.

The gateway records a message here before it answers 202/200, so the acknowledgement
rests on Postgres and not on the broker (the embedded one keeps topics in memory).
The pipeline settles the message when it ends: a reply was sent, it was a duplicate, a
human owns the conversation, or it can never succeed (dead-lettered). Anything still
open after a while — lost with a broker or a worker, or parked by a stage because a
dependency was down — is re-driven onto the inbound topic as the same event, with
backoff, until it is settled. Every effect downstream is keyed by the event id, so a
re-drive never answers twice.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum
from typing import Any

from psycopg_pool import AsyncConnectionPool

from schemas import InboundMessage

log = logging.getLogger(__name__)

REASON_CHARS = 500


class Outcome(StrEnum):
    """How an acknowledged message ended."""

    ANSWERED = "answered"  # a reply to it was sent
    DUPLICATE = "duplicate"  # the same channel message was already taken
    HUMAN = "human"  # a human owns the conversation: the bot stays quiet
    DEAD_LETTERED = "dead_lettered"  # it can never succeed (malformed, unknown tenant)
    UNKNOWN = "unknown"  # the reply's send may have reached the provider: not repeated
    ABANDONED = "abandoned"  # still open after the last re-drive (dead-lettered too)
    MERGED = "merged"  # part of a burst: the reply to the burst's last message answers it
    RECORDED = "recorded"  # kept, nothing to answer (an unfollow, an edit already answered)


@dataclass(frozen=True)
class RedrivePolicy:
    """When an open message is sent again: `first_s` after it was accepted, then twice
    as long after each re-drive up to `max_s`; after `max_redrives` it is abandoned."""

    first_s: float = 20.0
    max_s: float = 120.0
    max_redrives: int = 30


@dataclass(frozen=True)
class Due:
    """An open message to send again."""

    event_id: str
    conversation_id: str
    payload: bytes
    redrives: int
    accepted_at: datetime


async def record(
    pool: AsyncConnectionPool, messages: Sequence[InboundMessage], policy: RedrivePolicy
) -> None:
    """Store the messages (once per event id) before they are acknowledged."""
    if not messages:
        return
    rows = ", ".join(["(%s, %s, %s, %s, %s, now() + make_interval(secs => %s))"] * len(messages))
    params: list[Any] = []
    for msg in messages:
        params += [
            msg.event_id,
            msg.tenant_id,
            msg.conversation_id,
            msg.channel.value,
            msg.to_bytes(),
            policy.first_s,
        ]
    # One statement, so the batch (one webhook call may carry several) is stored whole.
    async with pool.connection() as conn:
        await conn.execute(
            "INSERT INTO inbound_log (event_id, tenant_id, conversation_id, channel, payload,"
            f" next_redrive_at) VALUES {rows} ON CONFLICT (event_id) DO NOTHING",
            tuple(params),
        )


async def settle(pool: AsyncConnectionPool, event_id: str, outcome: Outcome) -> None:
    """Close an open message (a no-op for one settled before, or never logged)."""
    async with pool.connection() as conn:
        await conn.execute(
            "UPDATE inbound_log SET outcome = %s, settled_at = now()"
            " WHERE event_id = %s AND outcome IS NULL",
            (outcome.value, event_id),
        )


async def park(
    pool: AsyncConnectionPool, event_id: str, stage: str, reason: str, retry_in_s: float
) -> bool:
    """Note why an open message waits and re-drive it in `retry_in_s`; False when the
    message is not in the log (it was not acknowledged through the gateway)."""
    async with pool.connection() as conn:
        cur = await conn.execute(
            "UPDATE inbound_log SET parked_stage = %s, parked_reason = %s, parked_at = now(),"
            " next_redrive_at = LEAST(next_redrive_at, now() + make_interval(secs => %s))"
            " WHERE event_id = %s AND outcome IS NULL RETURNING event_id",
            (stage, reason[:REASON_CHARS], retry_in_s, event_id),
        )
        return await cur.fetchone() is not None


async def claim_due(pool: AsyncConnectionPool, policy: RedrivePolicy, limit: int) -> list[Due]:
    """The open messages due for a re-drive, oldest first, each moved to its next
    re-drive time in the same statement (SKIP LOCKED: gateways share the work)."""
    async with pool.connection() as conn:
        cur = await conn.execute(
            "WITH due AS (SELECT event_id FROM inbound_log"
            "   WHERE outcome IS NULL AND next_redrive_at <= now()"
            "   ORDER BY next_redrive_at LIMIT %s FOR UPDATE SKIP LOCKED)"
            " UPDATE inbound_log l SET redrives = l.redrives + 1,"
            "   next_redrive_at = now() + make_interval(secs =>"
            "     LEAST(%s, %s * power(2, l.redrives + 1)))"
            " FROM due WHERE l.event_id = due.event_id"
            " RETURNING l.event_id, l.conversation_id, l.payload, l.redrives, l.accepted_at",
            (limit, policy.max_s, policy.first_s),
        )
        rows: list[dict[str, Any]] = await cur.fetchall()  # type: ignore[assignment]
    return _due(rows)


async def mark_enqueued(pool: AsyncConnectionPool, event_ids: Sequence[str]) -> None:
    """Note that the broker has these messages (they are in flight, not stranded)."""
    if not event_ids:
        return
    async with pool.connection() as conn:
        await conn.execute(
            "UPDATE inbound_log SET enqueued_at = now(), parked_at = NULL WHERE event_id = ANY(%s)",
            (list(event_ids),),
        )


async def claim_stranded(
    pool: AsyncConnectionPool, conversation_id: str, before: Sequence[str], policy: RedrivePolicy
) -> list[Due]:
    """The conversation's older open messages that are not on their way through the
    pipeline (never enqueued, or parked by a stage), oldest first, claimed for sending
    now: a newer message must not overtake them. `before` are the new messages."""
    async with pool.connection() as conn:
        cur = await conn.execute(
            "WITH stranded AS (SELECT event_id FROM inbound_log"
            "   WHERE conversation_id = %s AND outcome IS NULL AND NOT (event_id = ANY(%s))"
            "   AND (enqueued_at IS NULL OR parked_at IS NOT NULL)"
            "   FOR UPDATE SKIP LOCKED)"
            " UPDATE inbound_log l SET redrives = l.redrives + 1,"
            "   next_redrive_at = now() + make_interval(secs =>"
            "     LEAST(%s, %s * power(2, l.redrives + 1)))"
            " FROM stranded WHERE l.event_id = stranded.event_id"
            " RETURNING l.event_id, l.conversation_id, l.payload, l.redrives, l.accepted_at",
            (conversation_id, list(before), policy.max_s, policy.first_s),
        )
        rows: list[dict[str, Any]] = await cur.fetchall()  # type: ignore[assignment]
    return _due(rows)


def _due(rows: list[dict[str, Any]]) -> list[Due]:
    found = [
        Due(
            r["event_id"],
            r["conversation_id"],
            bytes(r["payload"]),
            r["redrives"],
            r["accepted_at"],
        )
        for r in rows
    ]
    # A conversation's messages go back in the order they were accepted.
    return sorted(found, key=lambda d: d.accepted_at)


async def backlog(pool: AsyncConnectionPool) -> int:
    """How many acknowledged messages are still open."""
    async with pool.connection() as conn:
        cur = await conn.execute("SELECT count(*) AS n FROM inbound_log WHERE outcome IS NULL")
        row: dict[str, Any] | None = await cur.fetchone()  # type: ignore[assignment]
    return int(row["n"]) if row else 0


async def redrive_all_now(pool: AsyncConnectionPool) -> int:
    """Make every open message due at once (after a broker restart lost what it held)."""
    async with pool.connection() as conn:
        cur = await conn.execute(
            "UPDATE inbound_log SET next_redrive_at = now() WHERE outcome IS NULL"
            " AND next_redrive_at > now()"
        )
        return cur.rowcount


async def prune(pool: AsyncConnectionPool, keep_days: float) -> int:
    """Drop settled messages older than `keep_days` (the messages table keeps the text)."""
    async with pool.connection() as conn:
        cur = await conn.execute(
            "DELETE FROM inbound_log WHERE outcome IS NOT NULL"
            " AND settled_at < now() - make_interval(secs => %s)",
            (keep_days * 86400,),
        )
        return cur.rowcount


# The paths from any pipeline event to the customer message it derives from: each
# downstream event embeds the one before it (schemas/events.py).
_NESTED = ("context", "nlu", "accepted", "message")


def inbound_event_id(raw: bytes | str) -> str | None:
    """The event id of the customer message a pipeline event derives from (an inbound
    message, or anything downstream of one); None when there is none or it is unreadable."""
    try:
        event = json.loads(raw)
    except (ValueError, UnicodeDecodeError):
        return None
    for _ in range(len(_NESTED) + 1):
        if not isinstance(event, dict):
            return None
        if isinstance(event.get("in_reply_to"), str):  # a reply
            return str(event["in_reply_to"])
        if "channel_message_id" in event:  # the inbound message itself
            found = event.get("event_id")
            return found if isinstance(found, str) else None
        event = next((event[k] for k in _NESTED if isinstance(event.get(k), dict)), None)
    return None
