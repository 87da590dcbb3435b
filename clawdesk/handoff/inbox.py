"""What the agent inbox reads and writes: the conversations humans own, their history,
an agent's reply (stored, and turned into a Reply for the dispatch stage), a hand-back."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from psycopg import AsyncConnection
from psycopg_pool import AsyncConnectionPool

from schemas import Channel, ControlAction, ConversationControl, Reply, utc_now


@dataclass(frozen=True)
class TicketView:
    """The latest handoff of a conversation and the state of its ticket."""

    status: str
    reason: str
    handed_off_at: datetime
    attempts: int
    next_attempt_at: datetime
    ticket_id: str | None
    ticket_url: str | None
    last_error: str


@dataclass(frozen=True)
class Conversation:
    """A conversation as the inbox shows it."""

    id: str
    tenant_id: str
    channel: str
    customer_id: str
    language: str | None
    status: str
    updated_at: datetime
    reply_metadata: dict[str, str]
    last_author: str | None
    last_text: str | None
    last_at: datetime | None
    ticket: TicketView | None


@dataclass(frozen=True)
class InboxMessage:
    """One message of the history, with the delivery state of what was sent."""

    id: str
    author: str
    text: str
    timestamp: datetime
    delivery: str | None
    delivery_detail: str = ""  # why a reply failed (e.g. WhatsApp's 24-hour window)


_SELECT_CONVERSATIONS = """
SELECT c.id, c.tenant_id, c.channel, c.customer_id, c.language, c.status, c.updated_at,
       c.reply_metadata,
       m.author AS last_author, m.text AS last_text, m."timestamp" AS last_at,
       t.status AS ticket_status, t.reason, t.handed_off_at, t.attempts, t.next_attempt_at,
       t.ticket_id, t.ticket_url, t.last_error
FROM conversations c
LEFT JOIN LATERAL (
    SELECT author, text, "timestamp" FROM messages
    WHERE conversation_id = c.id ORDER BY "timestamp" DESC LIMIT 1
) m ON true
LEFT JOIN LATERAL (
    SELECT * FROM handoff_tickets
    WHERE conversation_id = c.id ORDER BY handed_off_at DESC LIMIT 1
) t ON true
"""


def _conversation(row: dict[str, Any]) -> Conversation:
    ticket = None
    if row["ticket_status"] is not None:
        ticket = TicketView(
            status=row["ticket_status"],
            reason=row["reason"],
            handed_off_at=row["handed_off_at"],
            attempts=row["attempts"],
            next_attempt_at=row["next_attempt_at"],
            ticket_id=row["ticket_id"],
            ticket_url=row["ticket_url"],
            last_error=row["last_error"],
        )
    return Conversation(
        id=row["id"],
        tenant_id=row["tenant_id"],
        channel=row["channel"],
        customer_id=row["customer_id"],
        language=row["language"],
        status=row["status"],
        updated_at=row["updated_at"],
        reply_metadata={str(k): str(v) for k, v in (row["reply_metadata"] or {}).items()},
        last_author=row["last_author"],
        last_text=row["last_text"],
        last_at=row["last_at"],
        ticket=ticket,
    )


async def human_conversations(
    pool: AsyncConnectionPool, tenant_id: str, limit: int = 200
) -> list[Conversation]:
    """The tenant's conversations a human owns, latest activity first."""
    async with pool.connection() as conn:
        cur = await conn.execute(
            _SELECT_CONVERSATIONS + " WHERE c.tenant_id = %s AND c.status = 'human'"
            " ORDER BY c.updated_at DESC LIMIT %s",
            (tenant_id, limit),
        )
        rows: list[dict[str, Any]] = await cur.fetchall()  # type: ignore[assignment]
    return [_conversation(r) for r in rows]


async def find_conversation(
    pool: AsyncConnectionPool, tenant_id: str, conversation_id: str
) -> Conversation | None:
    """The tenant's conversation (None if it is unknown or another tenant's)."""
    async with pool.connection() as conn:
        cur = await conn.execute(
            _SELECT_CONVERSATIONS + " WHERE c.tenant_id = %s AND c.id = %s",
            (tenant_id, conversation_id),
        )
        row: dict[str, Any] | None = await cur.fetchone()  # type: ignore[assignment]
    return _conversation(row) if row else None


async def history(
    pool: AsyncConnectionPool, conversation_id: str, limit: int = 200
) -> list[InboxMessage]:
    """The conversation's messages, oldest first, with each reply's delivery status."""
    async with pool.connection() as conn:
        cur = await conn.execute(
            'SELECT m.id, m.author, m.text, m."timestamp", d.status AS delivery,'
            " d.detail AS delivery_detail"
            " FROM messages m LEFT JOIN deliveries d ON d.reply_id = m.id"
            ' WHERE m.conversation_id = %s ORDER BY m."timestamp" DESC LIMIT %s',
            (conversation_id, limit),
        )
        rows: list[dict[str, Any]] = await cur.fetchall()  # type: ignore[assignment]
    return [
        InboxMessage(
            r["id"],
            r["author"],
            r["text"],
            r["timestamp"],
            r["delivery"],
            r["delivery_detail"] if r["delivery"] == "failed" else "",
        )
        for r in reversed(rows)
    ]


async def last_customer_message_id(pool: AsyncConnectionPool, conversation_id: str) -> str:
    """The id of the customer's latest message ("" if none)."""
    async with pool.connection() as conn:
        cur = await conn.execute(
            "SELECT id FROM messages WHERE conversation_id = %s AND author = 'customer'"
            ' ORDER BY "timestamp" DESC LIMIT 1',
            (conversation_id,),
        )
        row: dict[str, Any] | None = await cur.fetchone()  # type: ignore[assignment]
    return str(row["id"]) if row else ""


def agent_reply_id(conversation_id: str, client_message_id: str) -> str:
    """The reply id of an agent's message: the same for a retried post, so it is sent once."""
    digest = hashlib.sha256(f"{conversation_id}\n{client_message_id}".encode()).hexdigest()
    return f"a-{digest[:32]}"


def agent_reply(
    conversation: Conversation, text: str, client_message_id: str, in_reply_to: str
) -> Reply:
    """The Reply that carries an agent's message through the customer's channel."""
    return Reply(
        conversation_id=conversation.id,
        tenant_id=conversation.tenant_id,
        channel=Channel(conversation.channel),
        reply_id=agent_reply_id(conversation.id, client_message_id),
        in_reply_to=in_reply_to,
        customer_id=conversation.customer_id,
        text=text,
        language=conversation.language or "en",
        intent="agent",
        confidence=1.0,
        received_at=utc_now(),
        metadata=conversation.reply_metadata,
        author="agent",
    )


def hand_back(conversation: Conversation, agent_id: str, note: str = "") -> ConversationControl:
    """The control event that gives the conversation back to the bot."""
    return ConversationControl(
        conversation_id=conversation.id,
        tenant_id=conversation.tenant_id,
        channel=Channel(conversation.channel),
        action=ControlAction.HAND_BACK,
        agent_id=agent_id,
        note=note,
    )


def agent_turn(reply: Reply, agent_id: str) -> ConversationControl:
    """The control event that adds an agent's reply to the conversation memory. Its
    event id is the reply id, so a retried post is remembered once."""
    return ConversationControl(
        **reply.lineage(event_id=reply.reply_id, occurred_at=reply.occurred_at),
        action=ControlAction.AGENT_REPLY,
        agent_id=agent_id,
        text=reply.text,
    )


async def store_agent_message(conn: AsyncConnection[Any], reply: Reply) -> None:
    """Store an agent's reply as an agent message (once per reply id)."""
    # Two racing posts of one message (a client retry) must not both pass NOT EXISTS.
    await conn.execute("SELECT pg_advisory_xact_lock(hashtext(%s))", (reply.reply_id,))
    await conn.execute(
        "INSERT INTO messages (id, conversation_id, tenant_id, user_id, direction, author,"
        ' channel, text, intent, confidence, "timestamp")'
        " SELECT %s, %s, %s, %s, 'out', 'agent', %s, %s, %s, %s, %s"
        " WHERE NOT EXISTS (SELECT 1 FROM messages WHERE id = %s)",
        (
            reply.reply_id,
            reply.conversation_id,
            reply.tenant_id,
            reply.customer_id,
            reply.channel.value,
            reply.text,
            reply.intent,
            reply.confidence,
            reply.occurred_at,
            reply.reply_id,
        ),
    )
