"""The messaging channels' webhooks and the in-app chat API.

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
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from typing import Annotated, Protocol

import psycopg
from aiokafka.errors import KafkaError
from fastapi import APIRouter, Depends, Header, Query, Request
from fastapi import Path as PathParam
from fastapi.responses import JSONResponse, PlainTextResponse, Response
from prometheus_client import Counter

from clawdesk import deliveries, metrics, tracing
from clawdesk.db import fetch_history, tenant_exists
from clawdesk.deliveries import Delivery
from clawdesk.gateway.fanout import ReplyHub
from clawdesk.gateway.models import CONVERSATION_ID_PATTERN, HistoryItem
from clawdesk.gateway.routes import (
    GatewayError,
    admit_or_refuse,
    channel_settings_of,
    check_rate,
    list_deliveries,
)
from clawdesk.gateway.state import GatewayState, gateway_state
from clawdesk.gateway.tokens import ConversationTokens, conversation_tokens
from connectors import email, inapp, telegram, wechat, whatsapp
from connectors.config import ChannelSettings
from connectors.signatures import (
    CLAWDESK_SIGNATURE_HEADER,
    CLAWDESK_TIMESTAMP_HEADER,
    PayloadError,
    SignatureError,
    StaleRequest,
    UnknownTenant,
    verify_timestamped,
)
from schemas import DeliveryReceipt, Event, InboundMessage, Reply
from topics import receipt_spec

log = logging.getLogger(__name__)

WEBHOOKS = Counter(
    "clawdesk_gateway_webhooks_total",
    "Channel webhook calls, by channel and outcome (enqueued, ignored, rejected reasons).",
    ["channel", "outcome"],
)

router = APIRouter()


def channel_config(request: Request) -> ChannelSettings:
    """FastAPI dependency: the app's channel settings, else the environment's."""
    return channel_settings_of(request)


State = Annotated[GatewayState, Depends(gateway_state)]
Channels = Annotated[ChannelSettings, Depends(channel_config)]


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


# --- WhatsApp -----------------------------------------------------------------------


@router.get("/webhooks/whatsapp", response_class=PlainTextResponse)
async def whatsapp_subscribe(
    channels: Channels,
    mode: Annotated[str | None, Query(alias="hub.mode")] = None,
    token: Annotated[str | None, Query(alias="hub.verify_token")] = None,
    challenge: Annotated[str | None, Query(alias="hub.challenge", max_length=200)] = None,
) -> Response:
    """Meta's verification of the callback URL: echo the challenge (403 otherwise)."""
    try:
        echo = whatsapp.verify_subscription(mode, token, challenge, channels)
    except SignatureError as err:
        WEBHOOKS.labels("whatsapp", "unauthenticated").inc()
        return JSONResponse({"error": str(err)}, status_code=403)
    return PlainTextResponse(echo)


@router.post("/webhooks/whatsapp")
async def whatsapp_notification(
    request: Request,
    state: State,
    channels: Channels,
    signature: Annotated[str | None, Header(alias=whatsapp.SIGNATURE_HEADER)] = None,
) -> dict[str, int]:
    """Messages and delivery statuses from the WhatsApp Cloud API."""
    if channels.whatsapp_app_secret is None:
        raise disabled("whatsapp")
    body = await read_body(request, channels.webhook_max_body_bytes, "whatsapp")
    with rejecting("whatsapp"):
        whatsapp.verify(body, signature, channels)
        tenants = whatsapp.tenant_resolver(channels, state.settings.default_tenant)
        events = whatsapp.parse_webhook(body, tenants)
    await accept(request, state, "whatsapp", events.messages, events.receipts)
    return {"enqueued": len(events.messages), "receipts": len(events.receipts)}


# --- Telegram -----------------------------------------------------------------------


@router.post("/webhooks/telegram")
async def telegram_update(
    request: Request,
    state: State,
    channels: Channels,
    secret: Annotated[str | None, Header(alias=telegram.SECRET_HEADER)] = None,
) -> dict[str, int]:
    """One Update from the Telegram Bot API."""
    if channels.telegram_secret_token is None:
        raise disabled("telegram")
    with rejecting("telegram"):
        telegram.verify(secret, channels)
    body = await read_body(request, channels.webhook_max_body_bytes, "telegram")
    tenant = channels.telegram_tenant or state.settings.default_tenant
    with rejecting("telegram"):
        message = telegram.parse_update(body, tenant_id=tenant)
    messages = [message] if message else []
    await accept(request, state, "telegram", messages)
    return {"enqueued": len(messages)}


# --- WeChat -------------------------------------------------------------------------


@router.get("/webhooks/wechat", response_class=PlainTextResponse)
async def wechat_verify_url(
    channels: Channels,
    signature: str | None = None,
    timestamp: str | None = None,
    nonce: str | None = None,
    echostr: Annotated[str | None, Query(max_length=200)] = None,
) -> Response:
    """WeChat's check of the server URL: echo `echostr` when the signature holds."""
    if channels.wechat_token is None:
        raise disabled("wechat")
    with rejecting("wechat"):
        wechat.verify(signature, timestamp, nonce, channels, now=time.time())
    if not echostr:
        raise GatewayError(400, "missing echostr")
    return PlainTextResponse(echostr)


@router.post("/webhooks/wechat", response_class=PlainTextResponse)
async def wechat_message(
    request: Request,
    state: State,
    channels: Channels,
    signature: str | None = None,
    timestamp: str | None = None,
    nonce: str | None = None,
) -> Response:
    """One message; answered with the reply itself if it comes within the wait."""
    started = time.monotonic()
    if channels.wechat_token is None:
        raise disabled("wechat")
    with rejecting("wechat"):
        wechat.verify(signature, timestamp, nonce, channels, now=time.time())
    body = await read_body(request, channels.webhook_max_body_bytes, "wechat")
    tenant = channels.wechat_tenant or state.settings.default_tenant
    with rejecting("wechat"):
        message = wechat.parse_message(body, tenant_id=tenant)
    if message is None:
        WEBHOOKS.labels("wechat", "ignored").inc()
        return PlainTextResponse(wechat.SUCCESS)
    await require_tenants(state, {message.tenant_id}, "wechat")
    remaining = channels.wechat_reply_wait_s - (time.monotonic() - started)
    reply = await _enqueue_and_await(request, state, message, remaining)
    if reply is None:
        # Too late to answer passively: the dispatcher sends it by the custom API.
        return PlainTextResponse(wechat.SUCCESS)
    return Response(wechat.render_passive_reply(reply), media_type="application/xml")


async def _enqueue_and_await(
    request: Request, state: GatewayState, message: InboundMessage, timeout: float
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
        await accept(request, state, "wechat", [message])
    except BaseException:
        waiting.cancel()
        raise
    try:
        return await waiting
    except Exception:
        # The message is enqueued; without a passive answer its reply goes by the API.
        log.exception("waiting for the wechat reply failed")
        return None


# --- E-mail -------------------------------------------------------------------------


@router.post("/webhooks/email", status_code=202)
async def inbound_mail(
    request: Request,
    state: State,
    channels: Channels,
    signature: Annotated[str | None, Header(alias=CLAWDESK_SIGNATURE_HEADER)] = None,
    timestamp: Annotated[str | None, Header(alias=CLAWDESK_TIMESTAMP_HEADER)] = None,
) -> dict[str, int]:
    """A raw RFC 822 message from the mail relay, signed like clawdesk's callbacks: a
    customer's mail (enqueued), or a bounce of one of our replies (its delivery fails)."""
    secret = channels.email_webhook_secret
    if secret is None:
        raise disabled("email")
    body = await read_body(request, channels.email_max_body_bytes, "email")
    with rejecting("email"):
        verify_timestamped(
            secret.get_secret_value(),
            signature,
            timestamp,
            body,
            now=time.time(),
            max_skew_s=channels.webhook_max_skew_s,
        )
        tenants = email.tenant_resolver(channels, state.settings.default_tenant)
        bounce = email.parse_bounce(body, tenant_for=tenants)
        message = None if bounce else email.parse_email(body, tenant_for=tenants)
    messages = [message] if message else []
    receipts = [bounce] if bounce else []
    await accept(request, state, "email", messages, receipts)
    return {"enqueued": len(messages), "receipts": len(receipts)}


# --- In-app chat --------------------------------------------------------------------


ApiKey = Annotated[str | None, Header(alias=inapp.API_KEY_HEADER)]
Tokens = Annotated[ConversationTokens, Depends(conversation_tokens)]
ConversationId = Annotated[str, PathParam(pattern=CONVERSATION_ID_PATTERN)]


@router.post("/api/inapp/messages", status_code=202)
async def post_inapp_message(
    request: Request, state: State, channels: Channels, tokens: Tokens, api_key: ApiKey = None
) -> dict[str, str]:
    """Enqueue an app user's message; answer once the broker has it."""
    with rejecting("inapp"):
        tenant = inapp.authenticate(api_key, channels)
    body = await read_body(request, channels.webhook_max_body_bytes, "inapp")
    with rejecting("inapp", payload_status=422):
        message = inapp.parse_message(body, tenant_id=tenant)
    await accept(request, state, "inapp", [message])
    return {
        "conversation_id": message.conversation_id,
        "event_id": message.event_id,
        # Opens the reply socket (/ws/{id}?token=) for a tenant without a callback URL.
        "token": tokens.issue(tenant, message.conversation_id),
    }


def require_owner(api_key: str | None, channels: ChannelSettings, conversation_id: str) -> None:
    """401 unless the API key is a tenant's, 404 unless the conversation is that tenant's."""
    with rejecting("inapp"):
        tenant = inapp.authenticate(api_key, channels)
    if not inapp.owns(tenant, conversation_id):
        raise GatewayError(404, "unknown conversation")


@router.get("/api/inapp/conversations/{conversation_id}/messages")
async def get_inapp_history(
    conversation_id: ConversationId, state: State, channels: Channels, api_key: ApiKey = None
) -> list[HistoryItem]:
    """The conversation's stored messages, oldest first (only the key's tenant's)."""
    require_owner(api_key, channels, conversation_id)
    try:
        async with asyncio.timeout(state.settings.stage_timeout_s):
            stored = await fetch_history(state.pool, conversation_id)
    except (psycopg.Error, TimeoutError) as err:
        log.warning("history lookup failed", extra={"error": repr(err)})
        raise GatewayError(503, "database unavailable") from err
    return [HistoryItem.of(m) for m in stored]


@router.get("/api/inapp/conversations/{conversation_id}/deliveries")
async def get_inapp_deliveries(
    conversation_id: ConversationId, state: State, channels: Channels, api_key: ApiKey = None
) -> list[Delivery]:
    """Each reply of the conversation with its delivery status (only the key's tenant's)."""
    require_owner(api_key, channels, conversation_id)
    return await list_deliveries(state, conversation_id)
