"""dispatch: send each reply through its channel once, record it, and emit a receipt.

Replies are taken in batches; within a batch, conversations are sent side by side (each
channel bounded by its own semaphore) and each conversation's replies in order. The
sending itself, with its claim, retries and dead letters, is `connectors.dispatcher`.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterable

from pydantic import ValidationError

from agents import guard
from clawdesk.app import app
from clawdesk.ops import tracing
from clawdesk.services import current, ready
from clawdesk.settings import channel_settings
from clawdesk.storage.outgoing import send_reply
from connectors.dispatcher import Dispatcher
from schemas import DeliveryReceipt, Reply
from topics.streams import receipt_topic, reply_topic

log = logging.getLogger(__name__)

STAGE = "dispatch"
BATCH_WINDOW_S = 0.05  # a lone reply waits at most this long for company


async def publish_receipt(receipt: DeliveryReceipt) -> None:
    """Put a delivery status on the receipts topic."""
    await receipt_topic.send(
        key=receipt.conversation_id.encode(), value=receipt.to_bytes(), headers=tracing.outgoing()
    )


async def dead_letter_reply(reply: Reply, error: BaseException, attempts: int) -> None:
    """Dead-letter a reply the dispatcher gave up on (topic and Postgres)."""
    await guard.dead_letter(STAGE, reply.to_bytes(), error, attempts)


def make_dispatcher() -> Dispatcher:
    """The dispatcher of this worker, over its services' Postgres pool."""
    return Dispatcher(
        pool=current().pool,
        settings=channel_settings(),
        send=send_reply,
        publish_receipt=publish_receipt,
        dead_letter=dead_letter_reply,
    )


async def parse_all(raws: list[bytes]) -> list[Reply]:
    """The batch's replies; a malformed one is dead-lettered and left out."""
    replies: list[Reply] = []
    for raw in raws:
        try:
            replies.append(Reply.from_bytes(raw))
        except ValidationError as err:
            try:
                await guard.dead_letter(STAGE, raw, err, 1)
            except Exception:
                log.exception("could not dead-letter a malformed reply")
    return replies


@app.agent(reply_topic)
async def dispatch_reply(replies: AsyncIterable[bytes]) -> None:
    """Dispatch each composed reply."""
    await ready()
    dispatcher = make_dispatcher()
    settings = channel_settings()
    batches = replies.take_events(settings.dispatch_batch, within=BATCH_WINDOW_S)  # type: ignore[attr-defined]
    async for events in batches:
        headers = [e.headers for e in events] if tracing.enabled() else None
        try:
            with tracing.batch_span(STAGE, headers):
                await dispatcher.deliver_all(await parse_all([e.value for e in events]))
        except Exception:  # deliver_all handles its errors; this is the loop's last guard
            log.exception("dispatching a batch failed")
