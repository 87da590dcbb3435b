"""Stand-ins for what leaves the process: the Kafka producer/consumer and the Postgres pool.

Each mimics only the surface of the real client (aiokafka, psycopg_pool) that the
gateway touches, so the gateway's own code runs unchanged against them.
"""

from __future__ import annotations

import asyncio
import queue
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import psycopg
from aiokafka.errors import KafkaConnectionError


@dataclass
class FakeKafkaClient:
    """aiokafka's AIOKafkaClient, as far as the readiness probe goes."""

    down: bool = False

    async def fetch_all_metadata(self) -> object:
        if self.down:
            raise KafkaConnectionError("no broker answers")
        return object()


@dataclass
class Sent:
    topic: str
    key: bytes | None
    value: bytes | None


@dataclass
class FakeProducer:
    """AIOKafkaProducer: records what was sent; can be made to fail."""

    client: FakeKafkaClient = field(default_factory=FakeKafkaClient)
    sent: list[Sent] = field(default_factory=list)
    fail: bool = False

    async def send_and_wait(
        self, topic: str, value: bytes | None = None, key: bytes | None = None
    ) -> object:
        if self.fail:
            raise KafkaConnectionError("broker went away")
        self.sent.append(Sent(topic, key, value))
        return object()


@dataclass
class FakeRecord:
    value: bytes | None


class FakeConsumer:
    """AIOKafkaConsumer.getone() fed from the test thread (TestClient runs the app elsewhere)."""

    def __init__(self) -> None:
        self._records: queue.Queue[bytes | None] = queue.Queue()

    def feed(self, value: bytes | None) -> None:
        self._records.put(value)

    async def getone(self) -> FakeRecord:
        while True:
            try:
                return FakeRecord(self._records.get_nowait())
            except queue.Empty:
                await asyncio.sleep(0.005)


@dataclass
class FakePool:
    """psycopg_pool.AsyncConnectionPool (dict rows) over in-memory tenants and messages."""

    tenants: set[str] = field(default_factory=lambda: {"demo"})
    messages: list[dict[str, Any]] = field(default_factory=list)
    statuses: list[tuple[Any, ...]] = field(default_factory=list)
    # Event ids recorded in the inbound log (the gateway's durable acknowledgement).
    logged: list[str] = field(default_factory=list)
    down: bool = False
    ready_workers: int = 1  # workers whose heartbeat says they answer now

    @asynccontextmanager
    async def connection(self, timeout: float | None = None) -> AsyncIterator[FakeConnection]:
        if self.down:
            raise psycopg.OperationalError("connection refused")
        yield FakeConnection(self)


@dataclass
class FakeCursor:
    rows: list[dict[str, Any]]

    async def fetchone(self) -> dict[str, Any] | None:
        return self.rows[0] if self.rows else None

    async def fetchall(self) -> list[dict[str, Any]]:
        return self.rows


@dataclass
class FakeConnection:
    pool: FakePool

    async def execute(self, query: str, params: tuple[Any, ...] = ()) -> FakeCursor:
        if "FROM tenants" in query:
            return FakeCursor([{"?column?": 1}] if params[0] in self.pool.tenants else [])
        if "FROM messages" in query:
            conversation_id, limit = params
            mine = [m for m in self.pool.messages if m["conversation_id"] == conversation_id]
            # Newest first, like the real query; fetch_history restores the order.
            mine.sort(key=lambda m: m["timestamp"], reverse=True)
            return FakeCursor(mine[:limit])
        if query.startswith("UPDATE deliveries"):
            # No reply of ours in memory: the status is recorded and matches nothing.
            self.pool.statuses.append(params)
            return FakeCursor([])
        if query.startswith("WITH stranded") or query.startswith("UPDATE inbound_log"):
            return FakeCursor([])  # no older open message is stranded in these tests
        if query.startswith("INSERT INTO inbound_log"):
            # Six values per message; the event id comes first.
            self.pool.logged.extend(str(params[i]) for i in range(0, len(params), 6))
            return FakeCursor([])
        if "FROM attachments WHERE conversation_id" in query:
            return FakeCursor([])  # no files in these conversations (real Postgres has its own)
        if "FROM worker_heartbeats" in query:
            return FakeCursor([{"n": self.pool.ready_workers}])
        if query.strip() == "SELECT 1":
            return FakeCursor([{"?column?": 1}])
        raise AssertionError(f"unexpected query: {query}")


def stored_message(
    conversation_id: str, message_id: str, author: str, text: str, at: datetime
) -> dict[str, Any]:
    """A row of the messages table as the history query selects it."""
    return {
        "id": message_id,
        "conversation_id": conversation_id,
        "author": author,
        "text": text,
        "timestamp": at,
    }
