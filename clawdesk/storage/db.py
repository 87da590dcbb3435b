"""Postgres: migrations and the queries the stages and the gateway run.

Every write is idempotent (keyed by channel message id or reply id) because the
pipeline runs at-least-once: a redelivered event must not store or send twice.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import datetime, timedelta
from enum import StrEnum
from pathlib import Path
from typing import Any

import psycopg
from psycopg.rows import dict_row
from psycopg.types.json import Jsonb
from psycopg_pool import AsyncConnectionPool
from tenacity import Retrying, retry_if_exception_type, stop_after_delay, wait_exponential

from clawdesk.ops import metrics
from schemas import DeadLetter, DeliveryStatus, InboundMessage, NluResult, Reply, TurnOutcome

log = logging.getLogger(__name__)

# Any constant works; it only has to be the same in every process that migrates.
_MIGRATION_LOCK = 0x0C1A_3DE5


def migration_files() -> list[tuple[str, str]]:
    """The packaged migrations as (version, sql), in order."""
    root = Path(__file__).parent / "migrations"
    return [(p.stem, p.read_text()) for p in sorted(root.glob("*.sql"))]


def apply_migrations(url: str) -> list[str]:
    """Apply pending migrations under an advisory lock; return the versions applied."""
    applied: list[str] = []
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute("SELECT pg_advisory_lock(%s)", (_MIGRATION_LOCK,))
        try:
            conn.execute(
                "CREATE TABLE IF NOT EXISTS schema_migrations ("
                " version text PRIMARY KEY, applied_at timestamptz NOT NULL DEFAULT now())"
            )
            done = {r[0] for r in conn.execute("SELECT version FROM schema_migrations")}
            for version, sql in migration_files():
                if version in done:
                    continue
                with conn.transaction():
                    conn.execute(sql.encode())
                    conn.execute("INSERT INTO schema_migrations (version) VALUES (%s)", (version,))
                log.info("applied migration", extra={"version": version})
                applied.append(version)
        finally:
            conn.execute("SELECT pg_advisory_unlock(%s)", (_MIGRATION_LOCK,))
    return applied


def apply_migrations_when_up(url: str, wait_s: float) -> list[str]:
    """`apply_migrations`, first waiting up to `wait_s` for Postgres to answer: a worker
    started while Postgres is down (restarted during an outage) waits for it instead of
    crashing, which a supervisor would only restart into the same crash."""
    retrying = Retrying(
        stop=stop_after_delay(wait_s),
        wait=wait_exponential(multiplier=0.5, max=5.0),
        retry=retry_if_exception_type(psycopg.OperationalError),
        before_sleep=lambda state: log.warning(
            "waiting for postgres",
            extra={
                "attempt": state.attempt_number,
                "error": type(state.outcome.exception()).__name__,
            }
            if state.outcome is not None
            else {"attempt": state.attempt_number},
        ),
        reraise=True,
    )
    return retrying(apply_migrations, url)


# Bounds on the workers' and gateway's database work: a stuck Postgres makes a call fail
# (and the stage retry or dead-letter it) instead of hanging a timer or a stage for ever.
STATEMENT_TIMEOUT_MS = 15_000
POOL_WAIT_S = 10.0


async def open_pool(url: str, *, max_size: int = 8) -> AsyncConnectionPool:
    """An open async connection pool (dict rows), with a statement timeout on every
    connection and a bounded wait for a free connection."""
    pool = AsyncConnectionPool(
        url,
        min_size=1,
        max_size=max_size,
        open=False,
        timeout=POOL_WAIT_S,
        # A connection is checked as it is handed out: after a Postgres restart every
        # pooled one is dead, and without the check each would fail one stage attempt.
        check=AsyncConnectionPool.check_connection,
        kwargs={
            "row_factory": dict_row,
            # Added to the URL's own options (a replay's URL sets its search_path).
            "options": _options(url, f"-c statement_timeout={STATEMENT_TIMEOUT_MS}"),
        },
    )
    await pool.open(wait=True, timeout=15)
    return pool


def _options(url: str, extra: str) -> str:
    """The `options` of a connection URL with `extra` appended."""
    given = psycopg.conninfo.conninfo_to_dict(url).get("options") or ""
    return f"{given} {extra}".strip()


async def tenant_exists(pool: AsyncConnectionPool, tenant_id: str) -> bool:
    """Whether the tenant is known."""
    async with pool.connection() as conn:
        cur = await conn.execute("SELECT 1 FROM tenants WHERE id = %s", (tenant_id,))
        return await cur.fetchone() is not None


class Inbound(StrEnum):
    """What `record_inbound` found."""

    NEW = "new"
    REDELIVERED = "redelivered"  # the same event again (a Kafka redelivery): process again
    DUPLICATE = "duplicate"  # the same channel message in another event: drop it


async def record_inbound(pool: AsyncConnectionPool, msg: InboundMessage) -> Inbound:
    """Store a customer message once per channel message id."""
    async with pool.connection() as conn, conn.transaction():
        cur = await conn.execute(
            "INSERT INTO inbound_dedupe (tenant_id, channel, channel_message_id, event_id)"
            " VALUES (%s, %s, %s, %s) ON CONFLICT DO NOTHING RETURNING event_id",
            (msg.tenant_id, msg.channel.value, msg.channel_message_id, msg.event_id),
        )
        if await cur.fetchone() is None:
            cur = await conn.execute(
                "SELECT event_id FROM inbound_dedupe WHERE tenant_id = %s AND channel = %s"
                " AND channel_message_id = %s",
                (msg.tenant_id, msg.channel.value, msg.channel_message_id),
            )
            row: dict[str, Any] | None = await cur.fetchone()  # type: ignore[assignment]
            same = row is not None and row["event_id"] == msg.event_id
            return Inbound.REDELIVERED if same else Inbound.DUPLICATE
        # reply_metadata: how to reach the customer now (a human agent's reply needs it).
        await conn.execute(
            "INSERT INTO conversations (id, tenant_id, channel, customer_id, reply_metadata)"
            " VALUES (%s, %s, %s, %s, %s)"
            " ON CONFLICT (id) DO UPDATE SET updated_at = now(),"
            " reply_metadata = EXCLUDED.reply_metadata",
            (
                msg.conversation_id,
                msg.tenant_id,
                msg.channel.value,
                msg.customer_id,
                Jsonb(msg.metadata),
            ),
        )
        await conn.execute(
            "INSERT INTO messages (id, conversation_id, tenant_id, user_id, direction, author,"
            ' channel, channel_message_id, text, "timestamp", kind, edit_of)'
            " VALUES (%s, %s, %s, %s, 'in', 'customer', %s, %s, %s, %s, %s, %s)",
            (
                msg.event_id,
                msg.conversation_id,
                msg.tenant_id,
                msg.customer_id,
                msg.channel.value,
                msg.channel_message_id,
                msg.text,
                msg.received_at,
                msg.kind.value,
                msg.edit_of,
            ),
        )
        return Inbound.NEW


async def tenant_welcome(pool: AsyncConnectionPool, tenant_id: str) -> dict[str, str]:
    """The tenant's welcome text by language (empty: the built-in greeting)."""
    async with pool.connection() as conn:
        cur = await conn.execute("SELECT welcome FROM tenants WHERE id = %s", (tenant_id,))
        row: dict[str, Any] | None = await cur.fetchone()  # type: ignore[assignment]
    welcome = row["welcome"] if row else {}
    return {str(k): str(v) for k, v in (welcome or {}).items() if isinstance(v, str) and v}


async def was_answered(
    pool: AsyncConnectionPool, msg: InboundMessage, channel_message_id: str
) -> bool:
    """Whether the bot has answered (or is sending its answer to) the channel message of
    the same tenant and channel; False for a message never received."""
    async with pool.connection() as conn:
        cur = await conn.execute(
            "SELECT 1 FROM inbound_dedupe i JOIN deliveries d ON d.reply_id = 'r-' || i.event_id"
            " WHERE i.tenant_id = %s AND i.channel = %s AND i.channel_message_id = %s"
            " AND d.status <> 'failed'",
            (msg.tenant_id, msg.channel.value, channel_message_id),
        )
        return await cur.fetchone() is not None


async def worker_heartbeat(
    pool: AsyncConnectionPool, worker_id: str, ready_at: datetime | None
) -> None:
    """Say that this worker answers now (its services are built and it owns partitions),
    or with `ready_at` None that it is starting (and does not answer yet)."""
    async with pool.connection() as conn:
        await conn.execute(
            "INSERT INTO worker_heartbeats (worker_id, ready_at, seen_at) VALUES (%s, %s, now())"
            " ON CONFLICT (worker_id) DO UPDATE SET seen_at = now(), ready_at = EXCLUDED.ready_at",
            (worker_id, ready_at),
        )


async def mark_worker_starting(url: str, worker_id: str) -> None:
    """Mark the worker as starting (not ready) on a connection of its own, before the
    services and their pool exist: a restarted worker's old beats stop counting."""
    async with await psycopg.AsyncConnection.connect(url, connect_timeout=2) as conn:
        await conn.execute(
            "UPDATE worker_heartbeats SET ready_at = NULL, seen_at = now() WHERE worker_id = %s",
            (worker_id,),
        )
        await conn.commit()


async def forget_worker(pool: AsyncConnectionPool, worker_id: str) -> None:
    """Take a stopping worker off the ready list at once (rather than when it goes stale)."""
    async with pool.connection() as conn:
        await conn.execute("DELETE FROM worker_heartbeats WHERE worker_id = %s", (worker_id,))


async def ready_workers(pool: AsyncConnectionPool, stale_s: float) -> int:
    """How many workers said in the last `stale_s` seconds that they answer now."""
    async with pool.connection() as conn:
        cur = await conn.execute(
            "SELECT count(*) AS n FROM worker_heartbeats WHERE ready_at IS NOT NULL"
            " AND seen_at > now() - make_interval(secs => %s)",
            (stale_s,),
        )
        row: dict[str, Any] | None = await cur.fetchone()  # type: ignore[assignment]
    return int(row["n"]) if row else 0


async def record_intent(pool: AsyncConnectionPool, nlu: NluResult) -> None:
    """Store the NLU verdict for a message (idempotent)."""
    msg = nlu.accepted.message
    async with pool.connection() as conn:
        await conn.execute(
            "INSERT INTO intents (message_id, conversation_id, tenant_id, intent, confidence,"
            " model_version) VALUES (%s, %s, %s, %s, %s, %s) ON CONFLICT DO NOTHING",
            (
                msg.event_id,
                msg.conversation_id,
                msg.tenant_id,
                nlu.intent,
                nlu.confidence,
                nlu.model_version,
            ),
        )
        await conn.execute(
            "UPDATE conversations SET language = %s WHERE id = %s",
            (nlu.language, msg.conversation_id),
        )


_FINAL = (DeliveryStatus.SENT, DeliveryStatus.DELIVERED, DeliveryStatus.READ)


async def record_sent(
    pool: AsyncConnectionPool,
    reply: Reply,
    status: DeliveryStatus,
    provider_message_id: str | None,
    detail: str = "",
) -> None:
    """Mark a reply's delivery status and store it as an outbound message (a bot reply
    with its turn outcome, counted in `clawdesk_turn_outcomes_total` once)."""
    counted = False
    async with pool.connection() as conn, conn.transaction():
        await conn.execute(
            "UPDATE deliveries SET status = %s, provider_message_id = %s, detail = %s,"
            " updated_at = now() WHERE reply_id = %s",
            (status.value, provider_message_id, detail, reply.reply_id),
        )
        if status in _FINAL:
            # A human agent's reply is stored by the inbox when it is written; the primary
            # key includes the timestamp, so only this check keeps it from being stored twice.
            await conn.execute(
                "INSERT INTO messages (id, conversation_id, tenant_id, user_id, direction,"
                ' author, channel, text, intent, confidence, "timestamp")'
                " SELECT %s, %s, %s, %s, 'out', %s, %s, %s, %s, %s, now()"
                " WHERE NOT EXISTS (SELECT 1 FROM messages WHERE id = %s)",
                (
                    reply.reply_id,
                    reply.conversation_id,
                    reply.tenant_id,
                    reply.customer_id,
                    reply.author,
                    reply.channel.value,
                    reply.text,
                    reply.intent,
                    reply.confidence,
                    reply.reply_id,
                ),
            )
            if reply.author == "bot":
                # The customer's message is answered: the inbound log stops re-driving it.
                await conn.execute(
                    "UPDATE inbound_log SET outcome = 'answered', settled_at = now()"
                    " WHERE event_id = %s AND outcome IS NULL",
                    (reply.in_reply_to,),
                )
                if reply.outcome is not None:
                    counted = await _record_outcome(conn, reply, reply.outcome)
    # Counted after the commit, and only by the call that stored the row: a reply sent
    # again after a crash between send and commit is counted once.
    if counted and reply.outcome is not None:
        metrics.TURN_OUTCOMES.labels(reply.tenant_id, reply.language, reply.outcome.value).inc()


async def _record_outcome(
    conn: psycopg.AsyncConnection[Any], reply: Reply, outcome: TurnOutcome
) -> bool:
    """Store a bot reply's turn outcome once; True if this call stored it."""
    cur = await conn.execute(
        "INSERT INTO turn_outcomes (reply_id, conversation_id, tenant_id, channel, language,"
        " intent, outcome, llm) VALUES (%s, %s, %s, %s, %s, %s, %s, %s)"
        " ON CONFLICT (reply_id) DO NOTHING RETURNING reply_id",
        (
            reply.reply_id,
            reply.conversation_id,
            reply.tenant_id,
            reply.channel.value,
            reply.language,
            reply.intent,
            outcome.value,
            reply.llm,
        ),
    )
    return await cur.fetchone() is not None


_INSERT_DEAD_LETTER = (
    "INSERT INTO dead_letters (letter_id, stage, error, attempts, event, body, body_bytes,"
    " body_sha256, truncated, escaped, occurred_at)"
    " VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s) ON CONFLICT (letter_id) DO NOTHING"
)


def _dead_letter_row(letter: DeadLetter, body: bytes | None) -> tuple[Any, ...]:
    return (
        letter.letter_id,
        letter.stage,
        letter.error,
        letter.attempts,
        letter.event,
        body,
        letter.event_bytes,
        letter.event_sha256,
        letter.truncated,
        letter.escaped,
        letter.occurred_at,
    )


async def record_dead_letter(
    pool: AsyncConnectionPool, stage: str, error: str, attempts: int, event: str
) -> None:
    """Keep a dead letter given as text in Postgres (NULs escaped: a text column
    refuses them). Letters of the stages go through `store_dead_letter`."""
    nul = "\\u0000"
    letter = DeadLetter(
        event=event.replace("\x00", nul),
        error=error.replace("\x00", nul),
        stage=stage,
        attempts=max(attempts, 1),
        escaped="\x00" in event,
    )
    await store_dead_letter(pool, letter)


async def store_dead_letter(
    pool: AsyncConnectionPool, letter: DeadLetter, body: bytes | None = None
) -> bool:
    """Keep a dead letter in Postgres, where ops can query it, once per letter id;
    `body` is the raw (head of the) event. Whether it was new.

    The letter's text must already be storable (no NUL): see `clawdesk.storage.deadletters`.
    """
    async with pool.connection() as conn:
        cur = await conn.execute(_INSERT_DEAD_LETTER, _dead_letter_row(letter, body))
        return cur.rowcount == 1


async def store_dead_letters(
    pool: AsyncConnectionPool, letters: list[tuple[DeadLetter, bytes | None]]
) -> int:
    """Insert many dead letters in one transaction (all or none); how many were new."""
    inserted = 0
    async with pool.connection() as conn, conn.transaction():
        for letter, body in letters:
            cur = await conn.execute(_INSERT_DEAD_LETTER, _dead_letter_row(letter, body))
            inserted += cur.rowcount
    return inserted


async def set_conversation_status(
    pool: AsyncConnectionPool, conversation_id: str, status: str
) -> None:
    """Move a conversation between bot, human and closed."""
    async with pool.connection() as conn:
        await conn.execute(
            "UPDATE conversations SET status = %s, updated_at = now() WHERE id = %s",
            (status, conversation_id),
        )


@dataclass(frozen=True)
class StoredMessage:
    """A message as the history shows it."""

    id: str
    author: str
    text: str
    timestamp: datetime


async def fetch_history(
    pool: AsyncConnectionPool, conversation_id: str, limit: int = 100
) -> list[StoredMessage]:
    """The conversation's messages, oldest first."""
    async with pool.connection() as conn:
        cur = await conn.execute(
            'SELECT id, author, text, "timestamp" FROM messages WHERE conversation_id = %s'
            ' ORDER BY "timestamp" DESC LIMIT %s',
            (conversation_id, limit),
        )
        rows: list[dict[str, Any]] = await cur.fetchall()  # type: ignore[assignment]
    return [StoredMessage(r["id"], r["author"], r["text"], r["timestamp"]) for r in rows[::-1]]


@dataclass(frozen=True)
class StoredConversation:
    """What Postgres keeps of a conversation, to rebuild lost memory from."""

    status: str
    language: str | None
    messages: list[StoredMessage]


async def customer_wrote_after(
    pool: AsyncConnectionPool, conversation_id: str, after: datetime, within_s: float
) -> bool:
    """Whether the customer sent another message in the conversation later than `after`,
    at most `within_s` seconds later (received times)."""
    async with pool.connection() as conn:
        cur = await conn.execute(
            "SELECT 1 FROM messages WHERE conversation_id = %s AND author = 'customer'"
            ' AND "timestamp" > %s AND "timestamp" <= %s LIMIT 1',
            (conversation_id, after, after + timedelta(seconds=within_s)),
        )
        return await cur.fetchone() is not None


async def fetch_conversation(
    pool: AsyncConnectionPool, conversation_id: str, *, before_id: str, limit: int
) -> StoredConversation | None:
    """The conversation's status, language and last `limit` messages (oldest first)
    other than `before_id`; None when Postgres knows no earlier message of it."""
    async with pool.connection() as conn:
        cur = await conn.execute(
            "SELECT status, language FROM conversations WHERE id = %s", (conversation_id,)
        )
        conv: dict[str, Any] | None = await cur.fetchone()  # type: ignore[assignment]
        if conv is None:
            return None
        cur = await conn.execute(
            'SELECT id, author, text, "timestamp" FROM messages WHERE conversation_id = %s'
            ' AND id <> %s ORDER BY "timestamp" DESC LIMIT %s',
            (conversation_id, before_id, limit),
        )
        rows: list[dict[str, Any]] = await cur.fetchall()  # type: ignore[assignment]
    if not rows:
        return None
    messages = [StoredMessage(r["id"], r["author"], r["text"], r["timestamp"]) for r in rows]
    return StoredConversation(conv["status"], conv["language"], messages[::-1])
