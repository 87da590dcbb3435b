"""Replies from the outbound topic, fanned out to the WebSockets of their conversation.

Every gateway instance reads the whole outbound topic (no consumer group), so a
reply reaches the instance holding the customer's socket whichever that is.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Protocol

from pydantic import ValidationError

from clawdesk.gateway.metrics import REPLIES
from schemas import Reply

log = logging.getLogger(__name__)

# None in a subscriber's queue means "you fell behind: resync from history".
Inbox = asyncio.Queue[Reply | None]


class ConsumerRecordLike(Protocol):
    """The part of an aiokafka `ConsumerRecord` the gateway reads."""

    @property
    def value(self) -> bytes | None: ...


class ReplyConsumer(Protocol):
    """The part of an aiokafka `AIOKafkaConsumer` the gateway uses."""

    async def getone(self) -> ConsumerRecordLike: ...


class ReplyHub:
    """Conversation id → the inboxes of the sockets open on it."""

    def __init__(self, inbox_size: int = 64) -> None:
        self._inbox_size = inbox_size
        self._inboxes: dict[str, set[Inbox]] = {}

    @contextmanager
    def subscribe(self, conversation_id: str) -> Iterator[Inbox]:
        """An inbox receiving the conversation's replies while the block runs."""
        inbox: Inbox = asyncio.Queue(maxsize=self._inbox_size)
        self._inboxes.setdefault(conversation_id, set()).add(inbox)
        try:
            yield inbox
        finally:
            inboxes = self._inboxes.get(conversation_id, set())
            inboxes.discard(inbox)
            if not inboxes:
                self._inboxes.pop(conversation_id, None)

    def publish(self, reply: Reply) -> int:
        """Queue the reply for every socket of its conversation; return how many."""
        inboxes = self._inboxes.get(reply.conversation_id, set())
        for inbox in inboxes:
            try:
                inbox.put_nowait(reply)
            except asyncio.QueueFull:
                # A stalled client must not grow memory without bound; it re-reads the
                # history when told to resync, so dropping its backlog loses nothing.
                _ask_to_resync(inbox)
                REPLIES.labels(outcome="resync").inc()
        REPLIES.labels(outcome="pushed" if inboxes else "unrouted").inc()
        return len(inboxes)

    def subscribers(self, conversation_id: str) -> int:
        """How many sockets are open on the conversation."""
        return len(self._inboxes.get(conversation_id, ()))


def _ask_to_resync(inbox: Inbox) -> None:
    while not inbox.empty():
        inbox.get_nowait()
    inbox.put_nowait(None)


def parse_reply(value: bytes | None) -> Reply | None:
    """The reply in a record's value, or None (logged) when it is not one."""
    if value is None:
        return None
    try:
        return Reply.from_bytes(value)
    except ValidationError as err:
        REPLIES.labels(outcome="malformed").inc()
        log.warning("skipping malformed reply", extra={"error": str(err)[:500]})
        return None


async def pump_replies(
    consumer: ReplyConsumer, hub: ReplyHub, *, retry_delay_s: float = 1.0
) -> None:
    """Read replies forever and publish them to the hub.

    Errors are logged and the loop goes on: an exception escaping here would
    silently stop every customer from getting answers on this instance.
    """
    while True:
        try:
            record = await consumer.getone()
        except Exception:
            log.exception("reading the outbound topic failed; retrying")
            await asyncio.sleep(retry_delay_s)
            continue
        reply = parse_reply(record.value)
        if reply is not None:
            hub.publish(reply)
