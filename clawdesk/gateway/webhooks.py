"""What the channels' webhook routes are built on (`connectors.base.Intake`), and the
routers of every registered channel; the routes themselves live in their channel's
module in `connectors/`.

Every route checks, in this order: the channel is enabled, the body is within its
size limit, the call is authentic (signature / secret token / API key, and a fresh
timestamp where the provider signs one), the body parses, the tenant is known. Any
failure is a 4xx `{"error": ...}` and nothing is enqueued. A valid call is answered
only once the broker has acknowledged every event it carried.

The channel settings come from `app.state.channel_settings` when the app has one
(tests), else from the environment (`connectors.config.channel_settings()`).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Iterator, Sequence
from contextlib import AbstractContextManager, contextmanager
from typing import Any, Protocol

import psycopg
from aiokafka.errors import KafkaError
from fastapi import APIRouter, Request
from fastapi.encoders import jsonable_encoder
from prometheus_client import Counter

from clawdesk.gateway.fanout import ReplyHub
from clawdesk.gateway.models import HistoryItem
from clawdesk.gateway.routes import (
    GatewayError,
    admit_or_refuse,
    channel_settings_of,
    check_rate,
    list_deliveries,
)
from clawdesk.gateway.state import GatewayState, gateway_state
from clawdesk.gateway.tokens import conversation_tokens
from clawdesk.ops import metrics, tracing
from clawdesk.storage.db import fetch_history, tenant_exists
from connectors import deliveries, registry
from connectors.config import ChannelSettings
from connectors.signatures import PayloadError, SignatureError, StaleRequest, UnknownTenant
from schemas import DeliveryReceipt, Event, InboundMessage, Reply
from topics import receipt_spec

log = logging.getLogger(__name__)

WEBHOOKS = Counter(
    "clawdesk_gateway_webhooks_total",
    "Channel webhook calls, by channel and outcome (enqueued, ignored, rejected reasons).",
    ["channel", "outcome"],
)


class AwaitReply(Protocol):
    """Wait up to `timeout` s for the reply to a message of the conversation."""

    async def __call__(
        self, conversation_id: str, timeout: float, *, in_reply_to: str | None = None
    ) -> Reply | None: ...


def hub_await_reply(hub: ReplyHub) -> AwaitReply:
    """`AwaitReply` over the gateway's reply fan-out (replies on the outbound topic)."""

    async def await_reply(
        conversation_id: str, timeout: float, *, in_reply_to: str | None = None
    ) -> Reply | None:
        with hub.subscribe(conversation_id) as inbox:
            try:
                async with asyncio.timeout(timeout):
                    while True:
                        reply = await inbox.get()
                        # None asks a socket to resync; an earlier message's reply is
                        # not ours: keep waiting for the one to this message.
                        if reply and in_reply_to in (None, reply.in_reply_to):
                            return reply
            except TimeoutError:
                return None

    return await_reply


# --- shared steps -------------------------------------------------------------------


@contextmanager
def rejecting(channel: str, *, payload_status: int = 400) -> Iterator[None]:
    """Turn a connector's refusal into the 4xx answer (and count it)."""
    try:
        yield
    except StaleRequest as err:
        WEBHOOKS.labels(channel, "stale").inc()
        raise GatewayError(401, str(err)) from err
    except SignatureError as err:
        WEBHOOKS.labels(channel, "unauthenticated").inc()
        raise GatewayError(401, str(err)) from err
    except PayloadError as err:
        WEBHOOKS.labels(channel, "malformed").inc()
        raise GatewayError(payload_status, str(err)) from err
    except UnknownTenant as err:
        WEBHOOKS.labels(channel, "unknown_tenant").inc()
        raise GatewayError(404, "unknown tenant") from err


def disabled(channel: str) -> GatewayError:
    """The 404 for a channel this deployment has not configured (raise it)."""
    WEBHOOKS.labels(channel, "disabled").inc()
    return GatewayError(404, f"the {channel} channel is not enabled")


async def read_body(request: Request, limit: int, channel: str) -> bytes:
    """The request body, refused with 413 as soon as it passes `limit` bytes."""
    declared = request.headers.get("content-length", "")
    if declared.isdigit() and int(declared) > limit:
        WEBHOOKS.labels(channel, "too_large").inc()
        raise GatewayError(413, f"request body over {limit} bytes")
    chunks: list[bytes] = []
    size = 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            WEBHOOKS.labels(channel, "too_large").inc()
            raise GatewayError(413, f"request body over {limit} bytes")
        chunks.append(chunk)
    return b"".join(chunks)


async def require_tenants(state: GatewayState, tenants: set[str], channel: str) -> None:
    """404 unless every tenant exists; 503 if Postgres does not answer."""
    try:
        async with asyncio.timeout(state.settings.stage_timeout_s):
            for tenant in sorted(tenants):
                if not await tenant_exists(state.pool, tenant):
                    WEBHOOKS.labels(channel, "unknown_tenant").inc()
                    raise GatewayError(404, "unknown tenant")
    except (psycopg.Error, TimeoutError) as err:
        log.warning("tenant lookup failed", extra={"error": repr(err)})
        raise GatewayError(503, "database unavailable") from err


async def enqueue(state: GatewayState, topic: str, events: Sequence[Event], channel: str) -> None:
    """Send the events in order, keyed by conversation; return once all are acked."""
    try:
        async with asyncio.timeout(state.settings.stage_timeout_s):
            for event in events:
                with tracing.span("gateway", None, **{"clawdesk.event_id": event.event_id}):
                    await state.producer.send_and_wait(
                        topic,
                        key=event.conversation_id.encode(),
                        value=event.to_bytes(),
                        **tracing.header_kwargs(),
                    )
    except (KafkaError, TimeoutError) as err:
        WEBHOOKS.labels(channel, "unavailable").inc()
        log.warning("enqueue failed", extra={"channel": channel, "error": repr(err)})
        # Safe for the provider to retry: the pipeline dedupes on channel_message_id.
        raise GatewayError(503, "could not enqueue; retry") from err


async def accept(
    request: Request,
    state: GatewayState,
    channel: str,
    messages: Sequence[InboundMessage],
    receipts: Sequence[DeliveryReceipt] = (),
) -> None:
    """Check every event's tenant and the messages' rate limits, record the delivery
    statuses in Postgres, then enqueue the messages on the inbound topic and the receipts
    on the receipts topic (no message is sent unless every check passed)."""
    if not (messages or receipts):
        WEBHOOKS.labels(channel, "ignored").inc()
        return
    await require_tenants(state, {e.tenant_id for e in (*messages, *receipts)}, channel)
    try:
        await check_rate(request, messages)
    except GatewayError:
        WEBHOOKS.labels(channel, "rate_limited").inc()
        raise
    recorded = await record_receipts(state, receipts)
    try:
        await admit_or_refuse(state, messages)
    except GatewayError:
        WEBHOOKS.labels(channel, "unavailable").inc()
        raise
    await enqueue(state, receipt_spec.name(state.settings), recorded, channel)
    WEBHOOKS.labels(channel, "enqueued").inc(len(messages))
    WEBHOOKS.labels(channel, "receipts").inc(len(receipts))
    for message in messages:
        log.info(
            "channel message enqueued",
            extra={
                "channel": channel,
                "event_id": message.event_id,
                "conversation_id": message.conversation_id,
                "tenant_id": message.tenant_id,
            },
        )


async def record_receipts(
    state: GatewayState, receipts: Sequence[DeliveryReceipt]
) -> list[DeliveryReceipt]:
    """Store each provider status on its reply's delivery; the receipts renamed after our
    reply id where the provider named only its own message id. 503 if Postgres fails
    (the provider sends the status again)."""
    recorded: list[DeliveryReceipt] = []
    try:
        async with asyncio.timeout(state.settings.stage_timeout_s):
            for receipt in receipts:
                reply_id = await deliveries.apply_receipt(state.pool, receipt)
                metrics.DELIVERY_RECEIPTS.labels(
                    receipt.channel.value, receipt.status.value, "yes" if reply_id else "no"
                ).inc()
                if reply_id and reply_id != receipt.reply_id:
                    receipt = receipt.model_copy(update={"reply_id": reply_id})
                recorded.append(receipt)
    except (psycopg.Error, TimeoutError) as err:
        log.warning("recording delivery statuses failed", extra={"error": repr(err)})
        raise GatewayError(503, "database unavailable") from err
    return recorded


# --- the intake the channels' routes are built on --------------------------------------


class GatewayIntake:
    """`connectors.base.Intake` over this gateway's state (and the in-app API's extras)."""

    def settings(self, request: Request) -> ChannelSettings:
        """The app's channel settings, else the environment's."""
        return channel_settings_of(request)

    def default_tenant(self, request: Request) -> str:
        """The gateway's default tenant."""
        return gateway_state(request).settings.default_tenant

    def count(self, channel: str, outcome: str) -> None:
        """Count a webhook call's outcome."""
        WEBHOOKS.labels(channel, outcome).inc()

    def error(self, status: int, message: str) -> GatewayError:
        """The `{"error": message}` answer with this status."""
        return GatewayError(status, message)

    def disabled(self, channel: str) -> GatewayError:
        """The 404 of a channel this deployment has not configured."""
        return disabled(channel)

    def rejecting(self, channel: str, *, payload_status: int = 400) -> AbstractContextManager[None]:
        """A connector's refusal as its 4xx."""
        return rejecting(channel, payload_status=payload_status)

    async def read_body(self, request: Request, limit: int, channel: str) -> bytes:
        """The body, 413 past the limit."""
        return await read_body(request, limit, channel)

    async def require_tenants(self, request: Request, tenants: set[str], channel: str) -> None:
        """404 unless every tenant exists."""
        await require_tenants(gateway_state(request), tenants, channel)

    async def accept(
        self,
        request: Request,
        channel: str,
        messages: Sequence[InboundMessage],
        receipts: Sequence[DeliveryReceipt] = (),
    ) -> None:
        """Every check, then enqueue (see `accept`)."""
        await accept(request, gateway_state(request), channel, messages, receipts)

    async def accept_and_await(
        self, request: Request, channel: str, message: InboundMessage, timeout: float
    ) -> Reply | None:
        """Accept the message and wait for its reply (None after `timeout` s)."""
        return await _enqueue_and_await(request, gateway_state(request), channel, message, timeout)

    def conversation_token(self, request: Request, tenant_id: str, conversation_id: str) -> str:
        """A token that opens the conversation's reply socket."""
        return conversation_tokens(request).issue(tenant_id, conversation_id)

    async def history(self, request: Request, conversation_id: str) -> list[dict[str, Any]]:
        """The conversation's stored messages, oldest first."""
        state = gateway_state(request)
        try:
            async with asyncio.timeout(state.settings.stage_timeout_s):
                stored = await fetch_history(state.pool, conversation_id)
        except (psycopg.Error, TimeoutError) as err:
            log.warning("history lookup failed", extra={"error": repr(err)})
            raise GatewayError(503, "database unavailable") from err
        return [HistoryItem.of(m).model_dump(mode="json") for m in stored]

    async def deliveries(self, request: Request, conversation_id: str) -> list[dict[str, Any]]:
        """Each reply of the conversation with its delivery status."""
        found = await list_deliveries(gateway_state(request), conversation_id)
        encoded: list[dict[str, Any]] = jsonable_encoder(found)
        return encoded


INTAKE = GatewayIntake()


def channel_routers() -> list[APIRouter]:
    """The webhook routes of every registered channel (read when an app is created, so a
    channel registered before then is served)."""
    routers = [c.router(INTAKE) for c in registry.channels()]
    return [r for r in routers if r is not None]


async def _enqueue_and_await(
    request: Request,
    state: GatewayState,
    channel: str,
    message: InboundMessage,
    timeout: float,
) -> Reply | None:
    await_reply: AwaitReply = getattr(request.app.state, "await_reply", None) or (
        hub_await_reply(state.hub)
    )
    # Subscribed before the message is enqueued, so even an instant reply is seen.
    waiting = asyncio.create_task(
        await_reply(message.conversation_id, max(timeout, 0.0), in_reply_to=message.event_id)
    )
    await asyncio.sleep(0)
    try:
        await accept(request, state, channel, [message])
    except BaseException:
        waiting.cancel()
        raise
    try:
        return await waiting
    except Exception:
        # The message is enqueued; without a passive answer its reply goes by the API.
        log.exception("waiting for the reply failed", extra={"channel": channel})
        return None
