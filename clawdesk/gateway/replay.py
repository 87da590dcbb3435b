"""Replies a reconnecting WebSocket missed, from Postgres.

The widget reconnects with `?after=<id of the last message it has>`; every bot or agent
message stored after that one is pushed before the live replies. A cursor the gateway
does not know (history pruned, another database) asks the client to re-read the whole
history instead (`{"type": "resync"}`).
"""

from __future__ import annotations

from typing import Any

from psycopg_pool import AsyncConnectionPool

from clawdesk.storage.db import StoredMessage

MAX_REPLAYED = 100


async def replies_after(
    pool: AsyncConnectionPool, conversation_id: str, after_id: str
) -> list[StoredMessage] | None:
    """The conversation's bot and agent messages stored after message `after_id`, oldest
    first; None when the conversation has no message `after_id`."""
    async with pool.connection() as conn:
        cur = await conn.execute(
            'SELECT "timestamp" FROM messages WHERE conversation_id = %s AND id = %s',
            (conversation_id, after_id),
        )
        cursor: dict[str, Any] | None = await cur.fetchone()  # type: ignore[assignment]
        if cursor is None:
            return None
        cur = await conn.execute(
            'SELECT id, author, text, "timestamp" FROM messages'
            " WHERE conversation_id = %s AND author <> 'customer' AND id <> %s"
            ' AND "timestamp" >= %s ORDER BY "timestamp" LIMIT %s',
            (conversation_id, after_id, cursor["timestamp"], MAX_REPLAYED),
        )
        rows: list[dict[str, Any]] = await cur.fetchall()  # type: ignore[assignment]
    return [StoredMessage(r["id"], r["author"], r["text"], r["timestamp"]) for r in rows]
