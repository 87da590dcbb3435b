"""What the gateway's routes share: settings and the connections the lifespan opened."""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass, field
from typing import Protocol

from psycopg_pool import AsyncConnectionPool
from starlette.requests import HTTPConnection

from clawdesk.gateway.fanout import ReplyHub
from clawdesk.ops import metrics
from clawdesk.settings import AppSettings


class KafkaClientLike(Protocol):
    """The part of aiokafka's `AIOKafkaClient` the readiness check uses."""

    async def fetch_all_metadata(self) -> object: ...


class InboundProducer(Protocol):
    """The part of aiokafka's `AIOKafkaProducer` the gateway uses."""

    @property
    def client(self) -> KafkaClientLike: ...

    async def send_and_wait(
        self,
        topic: str,
        value: bytes | None = None,
        key: bytes | None = None,
        *,
        headers: list[tuple[str, bytes]] | None = None,  # only passed when tracing is on
    ) -> object: ...


@dataclass
class Backlog:
    """The last count of open messages, refreshed by the re-driver (no query per request)."""

    open_messages: int = 0
    counted_at: float = 0.0

    def update(self, count: int) -> None:
        """Store a fresh count."""
        self.open_messages = count
        self.counted_at = time.monotonic()
        metrics.INBOUND_BACKLOG.set(count)


@dataclass(frozen=True)
class GatewayState:
    """Everything a request handler needs, built once per app lifespan."""

    settings: AppSettings
    producer: InboundProducer
    pool: AsyncConnectionPool
    hub: ReplyHub
    inbound_topic: str
    replies_task: asyncio.Task[None]
    backlog: Backlog = field(default_factory=Backlog)
    # The re-driver of open messages (None when the app was built without it: tests).
    redrive_task: asyncio.Task[None] | None = None


def gateway_state(conn: HTTPConnection) -> GatewayState:
    """FastAPI dependency: the state the lifespan stored on the app."""
    state: GatewayState = conn.app.state.gateway
    return state
