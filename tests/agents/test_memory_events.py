"""The ingest stage keeps conversation memory from the other stages' events: the bot's
replies become turns, handoffs set the flag (a dict stands in for the RocksDB table)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any
from unittest.mock import patch

import pytest

from agents.memory import remember_turn
from schemas import Channel, Handoff, Reply

T0 = datetime(2026, 12, 1, 12, 0, tzinfo=UTC)


def bot_reply(text: str, at: datetime, reply_id: str = "r-m1", author: str = "bot") -> Reply:
    return Reply(
        conversation_id="c1",
        tenant_id="demo",
        channel=Channel.WEB,
        occurred_at=at,
        reply_id=reply_id,
        in_reply_to="m1",
        customer_id="lena",
        text=text,
        language="en",
        intent="greeting",
        confidence=0.99,
        received_at=T0,
        author=author,  # type: ignore[arg-type]
    )


@pytest.fixture()
def memory(fake_services: Any) -> Any:
    table: dict[str, Any] = {}
    with patch("agents.memory_events.conversation_memory", table):
        yield table


def test_a_bot_reply_is_remembered_once_after_the_message_it_answers(memory: Any) -> None:
    from agents.memory_events import remember_reply

    memory["c1"] = remember_turn(None, "customer", "hi", T0, "m1", 10)
    # A later customer message was remembered before the reply to the first came back.
    later = T0 + timedelta(seconds=2)
    memory["c1"] = remember_turn(memory["c1"], "customer", "hello?", later, "m2", 10)
    raw = bot_reply("Hello! How can I help?", T0 + timedelta(seconds=1)).to_bytes()
    remember_reply(raw)
    remember_reply(raw)  # redelivered
    turns = [(t["role"], t["text"]) for t in memory["c1"]["turns"]]
    assert turns == [("customer", "hi"), ("bot", "Hello! How can I help?"), ("customer", "hello?")]
    assert memory["c1"]["language"] == "en"


def test_the_order_a_reply_answered_is_remembered_for_the_next_message(memory: Any) -> None:
    # "Has order 1001 arrived?" ... "ok, refund it": the nlu stage reads the slots of
    # this memory to know which order "it" is.
    from agents.memory_events import remember_reply

    memory["c1"] = remember_turn(None, "customer", "has order 1001 arrived?", T0, "m1", 10)
    reply = bot_reply("Order #1001 was delivered.", T0 + timedelta(seconds=1))
    remember_reply(reply.model_copy(update={"slots": {"order_number": "1001"}}).to_bytes())
    assert memory["c1"]["slots"] == {"order_number": "1001"}
    later = bot_reply("Order #1005 is on its way.", T0 + timedelta(seconds=3), reply_id="r-m2")
    remember_reply(later.model_copy(update={"slots": {"order_number": "1005"}}).to_bytes())
    remember_reply(bot_reply("You're welcome!", T0 + timedelta(seconds=5), "r-m3").to_bytes())
    assert memory["c1"]["slots"] == {"order_number": "1005"}, "the latest order, kept"


def test_a_human_agents_reply_is_left_to_the_control_event(memory: Any) -> None:
    from agents.memory_events import remember_reply

    remember_reply(bot_reply("Alice here", T0, author="agent").to_bytes())
    assert memory == {}


def test_a_handoff_flags_memory_and_its_redelivery_does_not_undo_a_hand_back(memory: Any) -> None:
    from agents.memory_events import remember_handoff

    handoff = Handoff(
        conversation_id="c1",
        tenant_id="demo",
        channel=Channel.WEB,
        reason="customer_request",
        customer_id="lena",
        last_message="human please",
    )
    remember_handoff(handoff.to_bytes())
    assert memory["c1"]["handoff"] is True
    memory["c1"]["handoff"] = False  # handed back by an agent (agents.control)
    remember_handoff(handoff.to_bytes())
    assert memory["c1"]["handoff"] is False


async def test_a_malformed_event_is_dead_lettered_and_changes_nothing(memory: Any) -> None:
    from agents.memory_events import apply, remember_reply

    with patch("agents.guard.dead_letter") as dead:
        await apply(b"{not json", remember_reply)
    assert dead.await_args.args[0] == "memory"
    assert memory == {}
