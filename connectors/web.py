"""The web chat widget channel: replies go to the outbound topic, which every gateway
instance follows and relays to the customer's open WebSocket."""

from __future__ import annotations

from collections.abc import Sequence

from connectors.base import ChannelModule
from connectors.config import channel_settings
from schemas import Reply


async def send(reply: Reply) -> str:
    """Publish the reply for the gateways; the reply id is the message id."""
    # The gateway imports every connector but never builds the Faust app otherwise.
    # deferred: topics.streams builds the Faust app, ~0.3-1.7 s (measured)
    from topics.streams import outbound_topic

    await outbound_topic.send(key=reply.conversation_id.encode(), value=reply.to_bytes())
    return reply.reply_id


async def send_media(reply: Reply, files: Sequence[object]) -> str:
    """A reply with images goes the same way: the gateway shows its attachments inline
    through signed links to the store, so the bytes are not needed here."""
    return await send(reply)


# The widget's page, API and reply sockets are the gateway's own (clawdesk.gateway.routes):
# the channel adds no webhook routes.
CHANNEL = ChannelModule(
    name="web", sender=send, settings_loader=channel_settings, media_sender=send_media
)
