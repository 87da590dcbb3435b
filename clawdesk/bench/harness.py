"""Drive a running pipeline from outside: produce events, follow topics.

Used by `clawdesk bench` and by the integration tests.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from dataclasses import dataclass

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, ConsumerRecord

from clawdesk.settings import AppSettings
from schemas import Channel, InboundMessage, new_id
from topics import TopicSpec


@dataclass
class Received:
    """A record read from a topic and when we saw it (monotonic seconds)."""

    key: bytes | None
    value: bytes
    partition: int
    seen_at: float


class Harness:
    """A producer plus followers of any topics of one pipeline (one topic prefix)."""

    def __init__(self, bootstrap_servers: str, settings: AppSettings) -> None:
        self.bootstrap = bootstrap_servers
        self.settings = settings
        self.producer: AIOKafkaProducer | None = None
        self._followers: list[tuple[AIOKafkaConsumer, asyncio.Task[None]]] = []

    async def __aenter__(self) -> Harness:
        self.producer = AIOKafkaProducer(bootstrap_servers=self.bootstrap, acks="all", linger_ms=2)
        await self.producer.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        for consumer, task in self._followers:
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)
            await consumer.stop()
        if self.producer:
            await self.producer.stop()

    async def send(self, spec: TopicSpec, key: str, value: bytes) -> None:
        """Produce one record and wait for the broker's acknowledgement."""
        assert self.producer is not None
        await self.producer.send_and_wait(spec.name(self.settings), value=value, key=key.encode())

    async def ask(
        self,
        text: str,
        conversation_id: str | None = None,
        *,
        tenant_id: str = "demo",
        channel_message_id: str | None = None,
        customer_id: str = "customer-1",
    ) -> InboundMessage:
        """Put a customer message on the inbound topic."""
        from topics import inbound_spec

        msg = InboundMessage(
            conversation_id=conversation_id or f"conv-{new_id()[:12]}",
            tenant_id=tenant_id,
            channel=Channel.WEB,
            channel_message_id=channel_message_id or new_id(),
            customer_id=customer_id,
            text=text,
        )
        await self.send(inbound_spec, msg.conversation_id, msg.to_bytes())
        return msg

    async def follow(self, spec: TopicSpec) -> list[Received]:
        """Start collecting every record of the topic (from the beginning) into a list."""
        consumer = AIOKafkaConsumer(
            spec.name(self.settings),
            bootstrap_servers=self.bootstrap,
            group_id=None,
            auto_offset_reset="earliest",
            fetch_max_wait_ms=50,
            metadata_max_age_ms=1000,
        )
        await consumer.start()
        out: list[Received] = []

        async def pump() -> None:
            while True:
                batches = await consumer.getmany(timeout_ms=100)
                now = time.monotonic()
                for records in batches.values():
                    out.extend(_received(r, now) for r in records)

        self._followers.append((consumer, asyncio.create_task(pump())))
        return out


def _received(record: ConsumerRecord[bytes, bytes], now: float) -> Received:
    return Received(record.key, record.value or b"", record.partition, now)


async def wait_for(
    records: list[Received], predicate: Callable[[list[Received]], bool], timeout: float
) -> list[Received]:
    """Wait until `predicate(records)` holds; raise TimeoutError with what was seen."""
    deadline = time.monotonic() + timeout
    while not predicate(records):
        if time.monotonic() > deadline:
            raise TimeoutError(f"condition not met in {timeout:.0f}s; saw {len(records)} records")
        await asyncio.sleep(0.05)
    return records
