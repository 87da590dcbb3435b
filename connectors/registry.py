"""Which connector sends a reply for which channel."""

from __future__ import annotations

from collections.abc import Awaitable, Callable

from connectors import email, inapp, telegram, web, wechat, whatsapp
from schemas import Channel, Reply

Sender = Callable[[Reply], Awaitable[str]]

SENDERS: dict[Channel, Sender] = {
    Channel.WEB: web.send,
    Channel.WHATSAPP: whatsapp.send,
    Channel.TELEGRAM: telegram.send,
    Channel.WECHAT: wechat.send,
    Channel.EMAIL: email.send,
    Channel.INAPP: inapp.send,
}


async def send_reply(reply: Reply) -> str:
    """Send a reply through its channel; returns the provider's message id."""
    return await SENDERS[reply.channel](reply)
