"""Conversation memory lost with its changelog is rebuilt from what Postgres keeps."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta

import pytest
from psycopg_pool import AsyncConnectionPool

from agents.memory import restored, snapshot
from clawdesk.storage import db
from clawdesk.storage.db import StoredConversation, StoredMessage
from schemas import Channel, InboundMessage

NOW = datetime(2026, 11, 24, tzinfo=UTC)


def test_restored_memory_has_the_turns_language_and_handoff() -> None:
    stored = StoredConversation(
        "human",
        "zh",
        [
            StoredMessage("e1", "customer", "我的订单", NOW),
            StoredMessage("r-e1", "bot", "请提供订单号", NOW + timedelta(seconds=1)),
        ],
    )

    memory = restored(stored, max_turns=10)

    view = snapshot(memory)
    assert [(t.role, t.text) for t in view.turns] == [
        ("customer", "我的订单"),
        ("bot", "请提供订单号"),
    ]
    assert view.language == "zh" and view.handoff
    assert memory["seen"] == ["e1", "r-e1"]  # a redelivered turn is not added twice


@pytest.fixture
async def pool(database_url: str) -> AsyncIterator[AsyncConnectionPool]:
    pool = await db.open_pool(database_url)
    yield pool
    await pool.close()


def message(n: int, text: str) -> InboundMessage:
    return InboundMessage(
        event_id=f"e{n}",
        conversation_id="c1",
        tenant_id="demo",
        channel=Channel.WEB,
        channel_message_id=f"m{n}",
        customer_id="c1",
        text=text,
        received_at=NOW + timedelta(seconds=n),
    )


async def test_fetch_conversation_leaves_out_the_message_being_processed(
    pool: AsyncConnectionPool,
) -> None:
    first, second = message(1, "where is order 1002?"), message(2, "and now?")
    await db.record_inbound(pool, first)
    assert await db.fetch_conversation(pool, "c1", before_id="e1", limit=10) is None

    await db.record_inbound(pool, second)
    stored = await db.fetch_conversation(pool, "c1", before_id="e2", limit=10)

    assert stored is not None and stored.status == "bot"
    assert [m.text for m in stored.messages] == ["where is order 1002?"]
