"""The gateway's limits: a request-body size limit (the ASGI twin of nginx's
`client_max_body_size`), derived from the producers' maximum message size so that a
body the gateway takes fits the inbound topic, and per-customer / per-tenant message
rate limits."""

from __future__ import annotations

import asyncio
import json
import logging
import math
import time
from collections import Counter
from collections.abc import Awaitable, Mapping, Sequence
from dataclasses import dataclass
from typing import TypeVar

from limits import RateLimitItem, parse
from limits.aio.storage import RedisStorage
from limits.aio.strategies import SlidingWindowCounterRateLimiter
from redis.asyncio import ConnectionPool
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from clawdesk.gateway.metrics import REJECTED_REQUESTS
from clawdesk.ops.metrics import RATE_LIMIT_CHECKS, RATE_LIMIT_FAILING_OPEN
from clawdesk.settings import DEFAULT_MAX_MESSAGE_BYTES, ChannelSettings
from schemas import InboundMessage

log = logging.getLogger(__name__)
T = TypeVar("T")

# What an inbound event adds around what a request carries: ids, metadata, the JSON
# envelope, the record batch. (The text an event keeps is bounded by its schema too;
# the body limit makes sure even a body kept whole would still fit the topic.)
EVENT_HEADROOM_BYTES = 64 * 1024


def max_body_bytes(max_message_bytes: int) -> int:
    """The request-body limit under which anything the gateway accepts fits a topic
    whose producers send records of up to `max_message_bytes` (settings)."""
    return max_message_bytes - EVENT_HEADROOM_BYTES


MAX_BODY_BYTES = max_body_bytes(DEFAULT_MAX_MESSAGE_BYTES)


@dataclass(frozen=True)
class PathLimit:
    """A route's own body limit (an image upload's is its file cap plus the form), and
    the error its 413 says."""

    max_bytes: int
    message: str


class BodyTooLarge(Exception):
    """Raised into the app from `receive` once the streamed body passes the limit."""


# Routes that bound their body themselves and put only a bounded part of it on the
# inbound topic: a raw e-mail may carry attachments far larger than any event, but its
# text is cut to 20,000 characters (`email_max_body_bytes` limits the upload).
OWN_LIMIT_PATHS = frozenset({"/webhooks/email"})


class BodySizeLimit:
    """Answer 413 to any HTTP request whose body is larger than `max_bytes`.

    The declared Content-Length is checked before the app runs; a body without one
    (chunked) is counted as it streams, because a client can lie or not declare it.
    The connection is not closed on purpose: uvicorn discards the unread rest of the
    body (like nginx's lingering close), so a client that reads its response only
    after uploading (fetch, httpx) still sees the 413 instead of a reset.
    """

    def __init__(
        self,
        app: ASGIApp,
        max_bytes: int = MAX_BODY_BYTES,
        own_limit_paths: frozenset[str] = OWN_LIMIT_PATHS,
        path_limits: Mapping[str, PathLimit] | None = None,
    ) -> None:
        self.app = app
        self.max_bytes = max_bytes
        self.own_limit_paths = own_limit_paths
        self.path_limits = dict(path_limits or {})

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope.get("path") in self.own_limit_paths:
            await self.app(scope, receive, send)
            return
        limit = self.path_limits.get(
            scope.get("path", ""),
            PathLimit(self.max_bytes, f"request body over {self.max_bytes} bytes"),
        )
        if _declared_length(scope) > limit.max_bytes:
            await self._refuse(scope, send, limit)
            return
        await self._stream_with_limit(scope, receive, send, limit)

    async def _stream_with_limit(
        self, scope: Scope, receive: Receive, send: Send, limit: PathLimit
    ) -> None:
        received = 0
        exceeded = False
        started = False

        async def counting_receive() -> Message:
            nonlocal received, exceeded
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > limit.max_bytes:
                    exceeded = True
                    raise BodyTooLarge
            return message

        async def guarded_send(message: Message) -> None:
            nonlocal started
            # Once over the limit the 413 is ours to send; whatever error response the
            # app makes of the interrupted read is dropped.
            if exceeded:
                return
            started = started or message["type"] == "http.response.start"
            await send(message)

        try:
            await self.app(scope, counting_receive, guarded_send)
        except BodyTooLarge:
            pass
        if exceeded and not started:
            await self._refuse(scope, send, limit)

    async def _refuse(self, scope: Scope, send: Send, limit: PathLimit) -> None:
        REJECTED_REQUESTS.labels(reason="too_large").inc()
        log.warning(
            "request body too large",
            extra={"path": scope.get("path"), "max_bytes": limit.max_bytes},
        )
        body = json.dumps({"error": limit.message}).encode()
        await send(
            {
                "type": "http.response.start",
                "status": 413,
                "headers": [
                    (b"content-type", b"application/json"),
                    (b"content-length", str(len(body)).encode()),
                ],
            }
        )
        await send({"type": "http.response.body", "body": body})


def _declared_length(scope: Scope) -> int:
    for name, value in scope.get("headers", []):
        if name == b"content-length":
            try:
                return int(value)
            except ValueError:
                return 0  # not a number: let the streamed count decide
    return 0


# --- Rate limits of inbound messages (Redis) -----------------------------------------


@dataclass(frozen=True)
class LimitExceeded:
    """A refused message: which limit, and how long until it admits one again."""

    scope: str  # "customer" or "tenant"
    limit: str  # e.g. "30 per 1 minute"
    retry_after_s: int


class RateLimiter:
    """Per-customer and per-tenant sliding-window limits kept in Redis (`limits`).

    Every gateway instance shares the counters, so the limits hold however many
    instances run. When Redis fails or is slow the message passes (fail open: a
    customer-service inbox must not go deaf with its cache), with a warning,
    `clawdesk_rate_limit_checks_total{result="error"}` and
    `clawdesk_rate_limit_failing_open` at 1.

    After a failure Redis is left alone for `RETRY_REDIS_S`, so every request does not
    wait for a dead server; then one request at a time probes it (the others pass) until
    one succeeds, which ends the fail-open at once. A failure also drops every pooled
    connection, so the probe after an outage never uses a connection of the dead server,
    and redis-py's own retries are off: its backoff (up to 10 s between tries) would
    only run into this class's timeout, and the retry window is this class's.
    """

    RETRY_REDIS_S = 2.0

    def __init__(
        self,
        redis_url: str,
        *,
        customer: str,
        tenant: str,
        key_prefix: str = "clawdesk:rl",
        timeout_s: float = 0.25,
    ) -> None:
        self.customer = parse(customer)
        self.tenant = parse(tenant)
        self.timeout_s = timeout_s
        uri = redis_url.replace("redis://", "async+redis://", 1).replace(
            "rediss://", "async+rediss://", 1
        )
        self.pool = ConnectionPool.from_url(
            redis_url,
            socket_timeout=timeout_s,
            socket_connect_timeout=timeout_s,
            retry=Retry(NoBackoff(), 0),
        )
        self.storage = RedisStorage(
            uri,
            implementation="redispy",
            key_prefix=key_prefix,
            connection_pool=self.pool,  # type: ignore[arg-type]  # limits types it narrowly
        )
        self.limiter = SlidingWindowCounterRateLimiter(self.storage)
        self._skip_until = 0.0
        self._probing = False  # a request is finding out whether Redis is back

    @classmethod
    def from_settings(cls, redis_url: str, channels: ChannelSettings) -> RateLimiter | None:
        """The configured limiter; None when disabled or no Redis is configured."""
        if not channels.rate_limit_enabled or not redis_url:
            return None
        return cls(
            redis_url,
            customer=channels.rate_limit_customer,
            tenant=channels.rate_limit_tenant,
            key_prefix=channels.rate_limit_key_prefix,
            timeout_s=channels.rate_limit_redis_timeout_s,
        )

    async def check(self, messages: Sequence[InboundMessage]) -> LimitExceeded | None:
        """Count the messages against their customers' and tenants' limits; the first
        limit they would exceed, or None when all may pass.

        A batch (one webhook call may carry several messages) passes whole or not at all,
        and a refused batch uses up nobody's allowance: the provider retries it, and
        counting it twice would hold the customer back for messages never taken.  So
        every limit is tested for the batch's cost first and only then hit.
        """
        wanted = self._costs(messages)
        failing = self._skip_until > 0.0
        if failing and (time.monotonic() < self._skip_until or self._probing):
            self._fail_open(wanted)
            return None
        self._probing = failing
        try:
            verdict = await self._check(wanted)
        except Exception as err:  # any Redis failure: let the messages through
            await self._failed(err)
            self._fail_open(wanted)
            return None
        finally:
            self._probing = False
        if failing:
            log.info("rate limit checks resumed: redis answers again")
        self._skip_until = 0.0
        RATE_LIMIT_FAILING_OPEN.set(0)
        return verdict

    async def _check(
        self, wanted: Sequence[tuple[str, RateLimitItem, tuple[str, ...], int]]
    ) -> LimitExceeded | None:
        for scope, limit, key, cost in wanted:
            if not await self._redis(self.limiter.test(limit, scope, *key, cost=cost)):
                return await self._refused(scope, limit, key)
        for scope, limit, key, cost in wanted:
            # Another gateway may have taken the last slots since the test: refuse
            # (its own counts stay, an over-count only in that race).
            if not await self._redis(self.limiter.hit(limit, scope, *key, cost=cost)):
                return await self._refused(scope, limit, key)
            RATE_LIMIT_CHECKS.labels(scope, "allowed").inc()
        return None

    async def _failed(self, err: Exception) -> None:
        """Fail open for a while, and forget every connection to the failed server."""
        self._skip_until = time.monotonic() + self.RETRY_REDIS_S
        RATE_LIMIT_FAILING_OPEN.set(1)
        log.warning("rate limit check failed; messages pass", extra={"error": repr(err)})
        try:
            await self.pool.disconnect(inuse_connections=True)
        except Exception:  # closing a dead socket may fail too; the pool reconnects anyway
            log.debug("dropping redis connections failed", exc_info=True)

    async def aclose(self) -> None:
        """Close the limiter's Redis connections."""
        await self.pool.disconnect()

    def _costs(
        self, messages: Sequence[InboundMessage]
    ) -> list[tuple[str, RateLimitItem, tuple[str, ...], int]]:
        """(scope, limit, key, number of messages) for every customer and tenant."""
        customers = Counter((m.tenant_id, m.customer_id) for m in messages)
        tenants = Counter(m.tenant_id for m in messages)
        return [
            *(("customer", self.customer, key, n) for key, n in customers.items()),
            *(("tenant", self.tenant, (tenant,), n) for tenant, n in tenants.items()),
        ]

    async def _redis(self, call: Awaitable[T]) -> T:
        async with asyncio.timeout(self.timeout_s * 4):
            return await call

    async def _refused(
        self, scope: str, limit: RateLimitItem, key: tuple[str, ...]
    ) -> LimitExceeded:
        RATE_LIMIT_CHECKS.labels(scope, "limited").inc()
        stats = await self._redis(self.limiter.get_window_stats(limit, scope, *key))
        wait = max(1, math.ceil(stats.reset_time - time.time()))
        return LimitExceeded(scope, str(limit), wait)

    @staticmethod
    def _fail_open(wanted: Sequence[tuple[str, RateLimitItem, tuple[str, ...], int]]) -> None:
        for scope, *_ in wanted:
            RATE_LIMIT_CHECKS.labels(scope, "error").inc()


def rate_limiter_of(app: object, channels: ChannelSettings, redis_url: str) -> RateLimiter | None:
    """The app's limiter (`app.state.rate_limiter`), made from the settings on first use."""
    state = app.state  # type: ignore[attr-defined]
    if not hasattr(state, "rate_limiter"):
        state.rate_limiter = RateLimiter.from_settings(redis_url, channels)
    limiter: RateLimiter | None = state.rate_limiter
    return limiter
