"""Which connector sends a reply for which channel."""

from __future__ import annotations

from collections.abc import Awaitable, Callable

from connectors import web
from schemas import Channel, Reply

Sender = Callable[[Reply], Awaitable[str]]

# Channels without their own connector yet are served over the outbound topic, which
# the gateway relays to the web widget and the in-app WebSocket.
SENDERS: dict[Channel, Sender] = {channel: web.send for channel in Channel}


async def send_reply(reply: Reply) -> str:
    """Send a reply through its channel; returns the provider's message id."""
    return await SENDERS[reply.channel](reply)
