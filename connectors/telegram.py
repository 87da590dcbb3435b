"""The Telegram Bot API channel.

Inbound: Telegram POSTs each Update to the webhook set with `secret_token`, which it
repeats in `X-Telegram-Bot-Api-Secret-Token`; for development, `poll_updates` reads
the same Updates by long polling `getUpdates`. A text message becomes an
InboundMessage; other updates (edits, stickers, callbacks...) are ignored.
Outbound: `POST {base}/bot<token>/sendMessage`, honouring the `retry_after` of a 429.

Update shape (trimmed)::

    {"update_id": 10001, "message": {"message_id": 7, "date": 1700000000,
        "chat": {"id": 4242, "type": "private"},
        "from": {"id": 4242, "is_bot": false, "language_code": "en"},
        "text": "where is my order?"}}
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator, Mapping
from typing import Annotated, Any

import httpx
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from connectors.config import (
    ChannelSettings,
    DeliveryError,
    ProviderUnavailable,
    channel_settings,
    raise_for_retry,
    require,
    send_retrying,
    transport_errors,
    using_client,
)
from connectors.signatures import PayloadError, SignatureError, secrets_equal
from schemas import Channel, InboundMessage, Reply

log = logging.getLogger(__name__)

SECRET_HEADER = "X-Telegram-Bot-Api-Secret-Token"
META_CHAT_ID = "telegram_chat_id"
MAX_TEXT = 4096  # sendMessage's limit
POLL_TIMEOUT_S = 30
POLL_RETRY_S = 1.0

_Int64 = Annotated[int, Field(ge=-(2**63), lt=2**63)]


class _Shape(BaseModel):
    model_config = ConfigDict(extra="ignore", frozen=True)


class _Chat(_Shape):
    id: _Int64


class _User(_Shape):
    id: _Int64
    is_bot: bool = False
    language_code: str | None = Field(default=None, max_length=35)


class _Message(_Shape):
    message_id: _Int64
    chat: _Chat
    sender: _User | None = Field(default=None, alias="from")
    text: str | None = Field(default=None, max_length=20_000)


class _Update(_Shape):
    update_id: _Int64
    message: _Message | None = None


def verify(secret_header: str | None, settings: ChannelSettings) -> None:
    """Check the secret token Telegram repeats on every webhook call."""
    expected = settings.telegram_secret_token
    if expected is None:
        raise SignatureError("telegram is not configured")
    if not secrets_equal(secret_header, expected.get_secret_value()):
        raise SignatureError("bad secret token")


def parse_update(body: bytes, *, tenant_id: str) -> InboundMessage | None:
    """The InboundMessage of a webhook body; None for an update we do not read."""
    try:
        update = _Update.model_validate_json(body)
    except ValidationError as err:
        raise PayloadError(f"malformed update: {err.errors()[0].get('msg', '')}"[:300]) from err
    return _to_event(update, tenant_id)


def to_event(raw: Mapping[str, Any], *, tenant_id: str) -> InboundMessage | None:
    """One Update (as decoded JSON) as an InboundMessage, or None if it is not text."""
    try:
        update = _Update.model_validate(raw)
    except ValidationError as err:
        raise PayloadError(f"malformed update: {err.errors()[0].get('msg', '')}"[:300]) from err
    return _to_event(update, tenant_id)


def update_id_of(raw: Mapping[str, Any]) -> int | None:
    """The update_id of a decoded Update, if it has a usable one."""
    value = raw.get("update_id")
    return value if isinstance(value, int) and not isinstance(value, bool) else None


def _to_event(update: _Update, tenant_id: str) -> InboundMessage | None:
    message = update.message
    if message is None or not message.text or (message.sender and message.sender.is_bot):
        return None
    chat_id = str(message.chat.id)
    metadata = {META_CHAT_ID: chat_id}
    if message.sender and message.sender.language_code:
        metadata["language_hint"] = message.sender.language_code
    return InboundMessage(
        conversation_id=f"telegram:{chat_id}",
        tenant_id=tenant_id,
        channel=Channel.TELEGRAM,
        channel_message_id=f"{chat_id}:{message.message_id}",
        # In a group the chat is shared; the customer is the person who wrote.
        customer_id=str(message.sender.id) if message.sender else chat_id,
        text=message.text,
        metadata=metadata,
    )


def _method_url(settings: ChannelSettings, method: str) -> str:
    token = require(settings.telegram_bot_token, "telegram_bot_token")
    return f"{settings.telegram_api_base.rstrip('/')}/bot{token}/{method}"


def _chat_id(reply: Reply) -> str:
    chat_id = reply.metadata.get(META_CHAT_ID) or reply.conversation_id.removeprefix("telegram:")
    if not chat_id.lstrip("-").isdigit():
        raise DeliveryError("the reply names no Telegram chat")
    return chat_id


async def send(
    reply: Reply,
    *,
    settings: ChannelSettings | None = None,
    client: httpx.AsyncClient | None = None,
) -> str:
    """Send the reply (split at 4096 characters); returns the first part's
    `<chat_id>:<message_id>`."""
    settings = settings or channel_settings()
    url = _method_url(settings, "sendMessage")
    chat_id = _chat_id(reply)
    parts = [reply.text[i : i + MAX_TEXT] for i in range(0, len(reply.text), MAX_TEXT)]
    ids: list[str] = []
    async with using_client(settings, client) as http:
        for part in parts or [""]:
            result = await _call(http, url, {"chat_id": chat_id, "text": part}, settings)
            if not isinstance(result, dict) or "message_id" not in result:
                raise DeliveryError("telegram answered without a message id")
            ids.append(f"{chat_id}:{result['message_id']}")
    return ids[0]


async def _call(
    http: httpx.AsyncClient, url: str, body: dict[str, Any], settings: ChannelSettings
) -> Any:
    async for attempt in send_retrying(settings):
        with attempt:
            with transport_errors("telegram send"):
                response = await http.post(url, json=body)
            return _result(response, url.rsplit("/", 1)[-1])
    raise AssertionError("unreachable: the retry loop returns or raises")


def _result(response: httpx.Response, method: str) -> Any:
    """The `result` of a Bot API answer; ProviderUnavailable / DeliveryError otherwise."""
    try:
        payload = response.json()
    except ValueError:
        payload = None
    if not isinstance(payload, dict):
        raise_for_retry(response, f"telegram {method}")
        raise DeliveryError(f"telegram {method}: HTTP {response.status_code}, not JSON")
    if payload.get("ok") is True:
        return payload.get("result")
    code = payload.get("error_code", response.status_code)
    description = str(payload.get("description", ""))[:200]
    parameters = payload.get("parameters")
    wait = parameters.get("retry_after") if isinstance(parameters, dict) else None
    if code == 429 or isinstance(wait, int | float):
        delay = float(wait) if isinstance(wait, int | float) else None
        raise ProviderUnavailable(f"telegram {method}: {description}", retry_after=delay)
    raise_for_retry(response, f"telegram {method}")
    raise DeliveryError(f"telegram {method} failed: {code} {description}")


async def poll_updates(
    *,
    tenant_id: str,
    settings: ChannelSettings | None = None,
    client: httpx.AsyncClient | None = None,
    offset: int | None = None,
    timeout_s: int = POLL_TIMEOUT_S,
) -> AsyncIterator[InboundMessage]:
    """Long-poll `getUpdates` forever (development, no public URL), yielding messages.

    An update is confirmed to Telegram (by the next call's offset) only once the
    caller has taken every message of the batch, so a crash redelivers, never loses.
    """
    settings = settings or channel_settings()
    url = _method_url(settings, "getUpdates")
    async with using_client(settings, client) as http:
        while True:
            updates = await _next_batch(http, url, offset, timeout_s)
            for raw in updates:
                update_id = update_id_of(raw) if isinstance(raw, dict) else None
                if update_id is None:
                    continue
                offset = update_id + 1
                event = _event_or_none(raw, tenant_id)
                if event is not None:
                    yield event


async def _next_batch(
    http: httpx.AsyncClient, url: str, offset: int | None, timeout_s: int
) -> list[Any]:
    params: dict[str, Any] = {"timeout": timeout_s, "allowed_updates": '["message"]'}
    if offset is not None:
        params["offset"] = offset
    try:
        response = await http.get(url, params=params, timeout=timeout_s + 10)
        result = _result(response, "getUpdates")
    except ProviderUnavailable as err:
        await asyncio.sleep(err.retry_after or POLL_RETRY_S)
        return []
    except httpx.TransportError as err:
        log.warning("telegram getUpdates failed", extra={"error": type(err).__name__})
        await asyncio.sleep(POLL_RETRY_S)
        return []
    return result if isinstance(result, list) else []


def _event_or_none(raw: Mapping[str, Any], tenant_id: str) -> InboundMessage | None:
    try:
        return to_event(raw, tenant_id=tenant_id)
    except PayloadError as err:
        log.warning("skipping malformed telegram update", extra={"error": str(err)})
        return None
