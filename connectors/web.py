"""The web chat widget channel: replies go to the outbound topic, which every gateway
instance follows and relays to the customer's open WebSocket."""

from __future__ import annotations

from schemas import Reply


async def send(reply: Reply) -> str:
    """Publish the reply for the gateways; the reply id is the message id."""
    from topics.streams import outbound_topic

    await outbound_topic.send(key=reply.conversation_id.encode(), value=reply.to_bytes())
    return reply.reply_id
