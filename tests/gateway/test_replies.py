"""Replies from the outbound topic reach the WebSockets of their conversation."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime

from clawdesk.gateway.fanout import ReplyHub
from schemas import Channel, Reply

from .conftest import Gateway


def make_reply(conversation_id: str, reply_id: str, text: str = "Hello!") -> Reply:
    return Reply(
        conversation_id=conversation_id,
        tenant_id="demo",
        channel=Channel.WEB,
        reply_id=reply_id,
        in_reply_to="m-1",
        customer_id="cust-1",
        text=text,
        language="en",
        intent="order_status",
        confidence=0.9,
        sources=["shipping.md#delivery-times"],
        received_at=datetime.now(UTC),
    )


def test_reply_is_pushed_only_to_its_conversation(gateway: Gateway) -> None:
    with gateway.client.websocket_connect(f"/ws/conv-1?token={gateway.token('conv-1')}") as socket:
        gateway.consumer.feed(make_reply("someone-else", "r-0").to_bytes())
        gateway.consumer.feed(b"not a reply")  # skipped; the loop must survive it
        gateway.consumer.feed(make_reply("conv-1", "r-1", "It ships today.").to_bytes())

        pushed = socket.receive_json()

    assert pushed == {
        "type": "reply",
        "reply_id": "r-1",
        "text": "It ships today.",
        "sources": ["shipping.md#delivery-times"],
        "handoff": False,
        "author": "bot",
        "in_reply_to": "m-1",  # the widget marks the customer's message answered
        "images": [],
    }


def test_every_socket_of_a_conversation_gets_the_reply(gateway: Gateway) -> None:
    url = f"/ws/conv-2?token={gateway.token('conv-2')}"
    with (
        gateway.client.websocket_connect(url) as first,
        gateway.client.websocket_connect(url) as second,
    ):
        gateway.consumer.feed(make_reply("conv-2", "r-2").to_bytes())

        assert first.receive_json()["reply_id"] == "r-2"
        assert second.receive_json()["reply_id"] == "r-2"


async def test_a_lagging_socket_is_told_to_resync() -> None:
    hub = ReplyHub(inbox_size=2)
    with hub.subscribe("conv-3") as inbox:
        for n in range(3):
            hub.publish(make_reply("conv-3", f"r-{n}"))

        # The backlog is dropped for a single "resync" marker (the client re-reads history).
        assert inbox.qsize() == 1
        assert await asyncio.wait_for(inbox.get(), 1) is None
    assert hub.subscribers("conv-3") == 0
