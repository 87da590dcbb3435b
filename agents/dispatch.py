"""dispatch: send each reply through its channel once, record it, and emit a receipt."""

from __future__ import annotations

from collections.abc import AsyncIterable

from agents import guard
from clawdesk import db, metrics
from clawdesk.app import app
from clawdesk.services import current, ready
from connectors import send_reply
from schemas import DeliveryReceipt, DeliveryStatus, Reply, utc_now
from topics.streams import receipt_topic, reply_topic

STAGE = "dispatch"


async def deliver(raw: bytes) -> None:
    """Send one reply unless it was sent before (a redelivery after a crash)."""
    reply = Reply.from_bytes(raw)
    pool = current().pool
    if not await db.claim_delivery(pool, reply):
        metrics.DUPLICATES.labels(STAGE).inc()
        return
    provider_id = await send_reply(reply)
    await db.record_sent(pool, reply, DeliveryStatus.SENT, provider_id)
    receipt = DeliveryReceipt(
        **reply.lineage(),
        reply_id=reply.reply_id,
        status=DeliveryStatus.SENT,
        provider_message_id=provider_id,
    )
    await receipt_topic.send(key=reply.conversation_id.encode(), value=receipt.to_bytes())
    metrics.RESPONSE_TIME.observe((utc_now() - reply.received_at).total_seconds())


@app.agent(reply_topic)
async def dispatch_reply(replies: AsyncIterable[bytes]) -> None:
    """Dispatch each composed reply."""
    await ready()
    async for raw in replies:
        await guard.process(STAGE, raw, deliver)
