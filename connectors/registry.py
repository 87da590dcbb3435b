"""The channels this deployment knows: one line per channel module.

Adding a channel is one module in `connectors/` with a `CHANNEL = ChannelModule(...)`
and one line in `BUILTIN` (or `register(CHANNEL)` from a plugin before the gateway and
the workers start; docs/channels.md walks through it). The gateway mounts each
channel's routes, the dispatcher sends through each channel's sender and ingest fetches
files with each channel's fetcher, all found here by the channel's name.
"""

from __future__ import annotations

from connectors import email, inapp, telegram, web, wechat, whatsapp
from connectors.base import Channel
from schemas import Reply
from schemas.base import register_channel_name

BUILTIN: tuple[Channel, ...] = (
    web.CHANNEL,
    whatsapp.CHANNEL,
    telegram.CHANNEL,
    wechat.CHANNEL,
    email.CHANNEL,
    inapp.CHANNEL,
)

_CHANNELS: dict[str, Channel] = {c.name: c for c in BUILTIN}


def register(channel: Channel) -> None:
    """Add a channel (its name becomes a valid `schemas.Channel`). Registering the same
    object again is harmless; another channel of a taken name is refused."""
    known = _CHANNELS.get(channel.name)
    if known is not None and known is not channel:
        raise ValueError(f"a channel named {channel.name!r} is registered already")
    register_channel_name(channel.name)
    _CHANNELS[channel.name] = channel


def unregister(name: str) -> None:
    """Remove a registered (non built-in) channel; for tests and plugins' teardown."""
    if any(c.name == name for c in BUILTIN):
        raise ValueError(f"{name!r} is a built-in channel")
    _CHANNELS.pop(name, None)


def channels() -> list[Channel]:
    """Every registered channel, built-ins first."""
    return list(_CHANNELS.values())


def channel(name: str) -> Channel:
    """The channel of this name (KeyError if none is registered)."""
    return _CHANNELS[name]


async def send_reply(reply: Reply) -> str:
    """Send a reply through its channel; returns the provider's message id."""
    return await channel(reply.channel.value).send(reply)
