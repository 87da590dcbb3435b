"""The customer's "did this help?" on a bot reply: stored once per reply, and counted.

A reply has one answer: a second click replaces the first (`updated_at` moves).
`clawdesk_reply_feedback_total` counts each vote that sets or changes the stored
answer, so the same click sent twice (a retried request) is counted once.
"""

from __future__ import annotations

from typing import Any

from psycopg_pool import AsyncConnectionPool

from clawdesk.ops import metrics

# `previous` is read in the same statement, so it is the answer before this vote even
# when two votes on one reply race (the row lock orders them).
_UPSERT = (
    "WITH previous AS (SELECT helpful FROM reply_feedback WHERE reply_id = %(reply)s)"
    " INSERT INTO reply_feedback (reply_id, conversation_id, tenant_id, helpful)"
    " SELECT %(reply)s, %(conversation)s, %(tenant)s, %(helpful)s"
    " WHERE EXISTS (SELECT 1 FROM messages WHERE conversation_id = %(conversation)s"
    "   AND id = %(reply)s AND author = 'bot')"
    " ON CONFLICT (reply_id) DO UPDATE SET helpful = EXCLUDED.helpful, updated_at = now()"
    "   WHERE reply_feedback.conversation_id = EXCLUDED.conversation_id"
    " RETURNING (SELECT helpful FROM previous) AS previous"
)


async def record_feedback(
    pool: AsyncConnectionPool, tenant_id: str, conversation_id: str, reply_id: str, helpful: bool
) -> bool:
    """Store whether the bot reply `reply_id` of the conversation helped; False when the
    conversation has no such bot reply (nothing is stored)."""
    async with pool.connection() as conn:
        cur = await conn.execute(
            _UPSERT,
            {
                "reply": reply_id,
                "conversation": conversation_id,
                "tenant": tenant_id,
                "helpful": helpful,
            },
        )
        row: dict[str, Any] | None = await cur.fetchone()  # type: ignore[assignment]
    if row is None:
        return False
    if row["previous"] != helpful:
        metrics.REPLY_FEEDBACK.labels(tenant_id, "true" if helpful else "false").inc()
    return True
