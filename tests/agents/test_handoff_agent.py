"""The handoff and control agents with Faust's test_context, real Postgres, fake Zendesk."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Iterator
from datetime import timedelta
from typing import Any
from unittest.mock import AsyncMock, patch

import pytest
from prometheus_client import REGISTRY
from pydantic import SecretStr

from clawdesk import services
from clawdesk.handoff import inbox
from clawdesk.handoff import records as store
from clawdesk.handoff.records import TicketStatus
from clawdesk.handoff.tickets import HandoffTickets
from clawdesk.settings import AppSettings
from clawdesk.storage import db
from schemas import (
    AcceptedMessage,
    Channel,
    ControlAction,
    ConversationControl,
    Handoff,
    InboundMessage,
)
from tests.fakes import zendesk
from tests.fakes.fixtures import Fakes, fake_servers, fakes

__all__ = ["fake_servers", "fakes"]


@pytest.fixture()
async def pool(database_url: str) -> AsyncIterator[Any]:
    pool = await db.open_pool(database_url)
    yield pool
    await pool.close()


@pytest.fixture()
def memory(pool: Any, fakes: Fakes, monkeypatch: pytest.MonkeyPatch) -> Iterator[dict[str, Any]]:
    """Services on real Postgres and the fake Zendesk; a dict stands in for the table
    (the RocksDB table is exercised by the integration tests)."""
    settings = AppSettings(
        _env_file=None,  # type: ignore[call-arg]
        zendesk_url=fakes.zendesk.base_url,
        zendesk_email=zendesk.EMAIL,
        zendesk_api_token=SecretStr(zendesk.API_TOKEN),
    )
    # A fresh ticket machinery per test, through the services (not a module global).
    tickets = HandoffTickets.from_settings(settings, pool)
    services.install(
        services.Services(
            settings=settings, pool=pool, kb=None, nlu=None, shop=None, cache=None, tickets=tickets
        )
    )
    table: dict[str, Any] = {}
    with (
        patch("agents.ingest.conversation_memory", table),
        patch("agents.memory_events.conversation_memory", table),
        patch("agents.control.conversation_memory", table),
    ):
        yield table


def customer_says(text: str, n: int, conv: str = "conv-r") -> InboundMessage:
    return InboundMessage(
        conversation_id=conv,
        tenant_id="demo",
        channel=Channel.WEB,
        channel_message_id=f"{conv}-m{n}",
        customer_id="lena",
        text=text,
    )


async def conversation(pool: Any, conv: str = "conv-1") -> Handoff:
    msg = customer_says("I want to talk to a human", 1, conv)
    await db.record_inbound(pool, msg)
    return Handoff(
        **msg.lineage(), reason="customer_request", customer_id="lena", last_message=msg.text
    )


def hand_back(handoff: Handoff, **changes: Any) -> ConversationControl:
    return ConversationControl(
        **handoff.lineage(), action=ControlAction.HAND_BACK, agent_id="alice", **changes
    )


async def status(pool: Any, conv: str = "conv-1") -> str:
    async with pool.connection() as conn:
        cur = await conn.execute("SELECT status FROM conversations WHERE id = %s", (conv,))
        return (await cur.fetchone())["status"]


def finished(stage: str) -> float:
    """Events the stage is done with: processed or dead-lettered."""
    labels = {"stage": stage}
    return sum(
        REGISTRY.get_sample_value(name, labels) or 0.0
        for name in ("clawdesk_messages_processed_total", "clawdesk_dead_letters_total")
    )


async def run(agent: Any, stage: str, payload: bytes) -> None:
    """Put one event and wait until the agent is done with it: `put` returns as soon as
    the stream hands the value over, before the agent's (I/O-bound) work finishes."""
    before = finished(stage)
    async with agent.test_context() as running:
        await running.put(payload)
        for _ in range(1500):  # polls a Prometheus counter: nothing to wait on
            if finished(stage) > before:
                return
            await asyncio.sleep(0.01)
    raise AssertionError(f"the {stage} agent did not finish the event in 15 s")


async def take_over(handoff: Handoff) -> None:
    """The handoff stage opens the ticket; the ingest stage, which owns the memory,
    flags it from the same event."""
    from agents.handoff import open_tickets
    from agents.memory_events import remember_handoffs

    await run(open_tickets, "handoff", handoff.to_bytes())
    await run(remember_handoffs, "memory", handoff.to_bytes())


async def control(event: ConversationControl | bytes) -> None:
    from agents.control import apply_controls

    await run(apply_controls, "control", event if isinstance(event, bytes) else event.to_bytes())


async def test_a_handoff_flags_memory_owns_the_conversation_and_opens_a_ticket(
    test_app, memory, pool, fakes: Fakes
) -> None:
    handoff = await conversation(pool)

    await take_over(handoff)

    assert memory["conv-1"]["handoff"] is True
    assert await status(pool) == "human"
    row = await store.fetch_ticket(pool, handoff.event_id)
    assert row is not None
    assert row.status is TicketStatus.CREATED
    assert len(fakes.zendesk.tickets) == 1


async def test_hand_back_clears_the_flag_and_a_redelivered_handoff_does_not_retake_it(
    test_app, memory, pool, fakes: Fakes
) -> None:
    handoff = await conversation(pool)
    await take_over(handoff)

    await control(hand_back(handoff))
    assert memory["conv-1"]["handoff"] is False
    assert await status(pool) == "bot"

    await take_over(handoff)  # Kafka redelivers the old handoff
    assert memory["conv-1"]["handoff"] is False
    assert await status(pool) == "bot"
    assert len(fakes.zendesk.tickets) == 1


async def test_a_stale_or_repeated_hand_back_changes_nothing(
    test_app, memory, pool, fakes: Fakes
) -> None:
    handoff = await conversation(pool)
    await take_over(handoff)
    stale = hand_back(handoff, occurred_at=handoff.occurred_at - timedelta(minutes=1))

    await control(stale)
    assert memory["conv-1"]["handoff"] is True
    assert await status(pool) == "human"

    fresh = hand_back(handoff)
    await control(fresh)
    memory["conv-1"]["handoff"] = True  # handed off again meanwhile (a new handoff event)
    await control(fresh)  # redelivered: already applied
    assert memory["conv-1"]["handoff"] is True


async def test_the_retry_timer_opens_tickets_for_handoffs_recorded_without_zendesk(
    test_app, memory, pool, fakes: Fakes
) -> None:
    from agents.handoff import retry_pending

    handoff = await conversation(pool)
    row = await store.record_handoff(pool, handoff, 0.0)
    assert row is not None
    # What a worker without Zendesk settings recorded before this one started.
    await store.mark_final(pool, handoff.event_id, TicketStatus.NOT_CONFIGURED, "not set")

    await retry_pending()  # one tick of the timer

    stored = await store.fetch_ticket(pool, handoff.event_id)
    assert stored is not None and stored.status is TicketStatus.CREATED
    [ticket] = fakes.zendesk.tickets.values()
    assert ticket["external_id"] == "conv-1"


async def ingest(memory: dict[str, Any], msg: InboundMessage) -> list[AcceptedMessage]:
    """Run the ingest agent on one message (same memory table); what it passed on."""
    from agents.ingest import accept_messages

    sent = AsyncMock()
    with (
        patch("agents.ingest.conversation_memory", memory),
        patch("agents.ingest.accepted_topic.send", sent),
    ):
        await run(accept_messages, "ingest", msg.to_bytes())
    return [AcceptedMessage.from_bytes(c.kwargs["value"]) for c in sent.await_args_list]


async def agent_says(pool: Any, text: str, client_message_id: str) -> ConversationControl:
    """The control event the inbox publishes with an agent's reply."""
    found = await inbox.find_conversation(pool, "demo", "conv-r")
    assert found is not None
    reply = inbox.agent_reply(found, text, client_message_id, in_reply_to="")
    return inbox.agent_turn(reply, "alice")


async def test_after_hand_back_the_bot_remembers_what_the_agent_said(
    test_app, memory, pool, fakes: Fakes
) -> None:
    first = customer_says("Where is my refund? I want a human", 1)
    assert len(await ingest(memory, first)) == 1
    handoff = Handoff(
        **first.lineage(), reason="customer_request", customer_id="lena", last_message=first.text
    )
    await take_over(handoff)
    assert await ingest(memory, customer_says("Hello? Anyone there?", 2)) == []  # bot quiet

    said = await agent_says(pool, "Hi, I'm Alice. Your refund went out today.", "c1")
    await control(said)
    await control(said)  # the agent's retried post (or a redelivery): remembered once
    await control(hand_back(handoff))
    [accepted] = await ingest(memory, customer_says("Thanks! When will it arrive?", 3))

    assert accepted.memory.handoff is False
    assert [(t.role, t.text) for t in accepted.memory.turns] == [
        ("customer", "Where is my refund? I want a human"),
        ("customer", "Hello? Anyone there?"),
        ("agent", "Hi, I'm Alice. Your refund went out today."),
    ]


AGENT_REPLY_WITHOUT_TEXT = (
    b'{"conversation_id": "conv-1", "tenant_id": "demo", "channel": "web",'
    b' "action": "agent_reply", "agent_id": "alice", "text": "  "}'
)


@pytest.mark.parametrize(
    "payload",
    [b'{"action": "delete_everything"}', AGENT_REPLY_WITHOUT_TEXT],
    ids=["unknown_action", "agent_reply_without_text"],
)
async def test_a_malformed_control_event_is_dead_lettered(
    test_app, memory, pool, payload: bytes
) -> None:
    with patch("topics.streams.dead_letter_topic.send") as dead:
        await control(payload)
    assert dead.await_count == 1
    assert b"control" in dead.await_args.kwargs["value"]
    assert memory == {}


async def test_the_ticket_names_the_files_the_customer_sent(
    test_app, memory, pool, fakes: Fakes
) -> None:
    handoff = await conversation(pool, "conv-files")
    async with pool.connection() as conn:
        cur = await conn.execute("SELECT id FROM messages WHERE conversation_id = 'conv-files'")
        (message_id,) = (await cur.fetchone()).values()
        for att_id, key, content_type, size, refused in (
            ("att-" + "1" * 32, "demo/x/att-1.png", "image/png", 64_000, None),
            ("att-" + "2" * 32, None, None, None, "too_large"),
        ):
            await conn.execute(
                "INSERT INTO attachments (id, message_id, conversation_id, tenant_id, channel,"
                " kind, provider_ref, object_key, content_type, size_bytes, refused)"
                " VALUES (%s, %s, 'conv-files', 'demo', 'web', 'image', %s, %s, %s, %s, %s)",
                (att_id, message_id, f"ref-{att_id}", key, content_type, size, refused),
            )

    await take_over(handoff)

    (ticket_id,) = fakes.zendesk.tickets
    body = fakes.zendesk.comments[ticket_id][0]["body"]
    assert f"[image attached: image/png, 62 KB, id att-{'1' * 32}; see the inbox]" in body
    assert "[image not kept: too large]" in body
