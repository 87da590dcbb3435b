"""The in-app chat channel: a tenant's own app backend talks to clawdesk.

Inbound: the backend POSTs its users' messages to `/api/inapp/messages` with its
tenant's API key in `X-Api-Key`. Conversation ids are scoped by tenant
(`inapp:<tenant>:<the app's id>`), so one tenant's key never reads another's history.
Outbound: each reply is POSTed to the tenant's callback URL (or, for a tenant without
one, pushed over the gateway's WebSocket like the web widget's), signed
`X-Clawdesk-Signature: sha256=<hex HMAC of "<timestamp>.<body>">` with the timestamp in
`X-Clawdesk-Timestamp`; the backend checks both (`signatures.verify_timestamped`).
A callback URL may not reach private, loopback, link-local, multicast or reserved
addresses (`clawdesk.integrations.ssrf`; checked when configured and, resolved, before each POST)
unless `CLAWDESK_INAPP_ALLOW_PRIVATE_CALLBACKS` is set.

Message shape::

    {"customer_id": "user-17", "text": "Where is my order?",
     "client_message_id": "m-0001", "conversation_id": "chat-9"}
"""

from __future__ import annotations

import json
import time
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from typing import Annotated, Any, Protocol

import httpx
from fastapi import APIRouter, Header, Request
from fastapi import Path as PathParam
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from clawdesk.integrations import ssrf
from connectors import web
from connectors.base import ChannelModule, Intake
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
from connectors.signatures import (
    CLAWDESK_SIGNATURE_HEADER,
    CLAWDESK_TIMESTAMP_HEADER,
    PayloadError,
    SignatureError,
    secrets_equal,
    sign_timestamped,
)
from schemas import Channel, InboundMessage, Reply, new_id

API_KEY_HEADER = "X-Api-Key"
# The gateway's conversation id pattern (clawdesk.gateway.models), for the API's paths.
CONVERSATION_ID = r"^[A-Za-z0-9_.:-]{1,200}$"
_ApiKey = Annotated[str | None, Header(alias=API_KEY_HEADER)]
_ConversationPath = Annotated[str, PathParam(pattern=CONVERSATION_ID)]
IDEMPOTENCY_HEADER = "Idempotency-Key"
MAX_TEXT = 4000
MAX_METADATA = 16
LOCAL_ID_PATTERN = r"^[A-Za-z0-9_.-]{1,100}$"


class _MessageIn(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    conversation_id: str | None = Field(default=None, pattern=LOCAL_ID_PATTERN)
    customer_id: str = Field(min_length=1, max_length=200)
    text: str
    client_message_id: str = Field(min_length=1, max_length=200)
    metadata: dict[str, str] = Field(default_factory=dict)

    @field_validator("text")
    @classmethod
    def _text_is_sendable(cls, value: str) -> str:
        text = value.strip()
        if not 1 <= len(text) <= MAX_TEXT:
            raise ValueError(f"text must be 1 to {MAX_TEXT} characters after trimming")
        return text

    @field_validator("metadata")
    @classmethod
    def _metadata_is_small(cls, value: dict[str, str]) -> dict[str, str]:
        if len(value) > MAX_METADATA or any(len(k) > 64 or len(v) > 500 for k, v in value.items()):
            raise ValueError(f"at most {MAX_METADATA} entries, keys ≤ 64, values ≤ 500 chars")
        return value


def authenticate(api_key: str | None, settings: ChannelSettings) -> str:
    """The tenant whose API key this is (SignatureError if none).

    Every configured key is compared, in constant time, whether or not one matched.
    """
    tenant: str | None = None
    for candidate, key in settings.inapp_api_keys.items():
        if secrets_equal(api_key, key.get_secret_value()) and key.get_secret_value():
            tenant = candidate
    if tenant is None:
        raise SignatureError("missing or unknown API key")
    return tenant


def conversation_id(tenant_id: str, local_id: str) -> str:
    """The clawdesk conversation id of the app's conversation `local_id`."""
    return f"inapp:{tenant_id}:{local_id}"


def owns(tenant_id: str, conversation: str) -> bool:
    """Whether a conversation id belongs to the tenant."""
    return conversation.startswith(f"inapp:{tenant_id}:")


def parse_message(body: bytes, *, tenant_id: str) -> InboundMessage:
    """The InboundMessage of a posted body (PayloadError naming the bad field)."""
    try:
        message = _MessageIn.model_validate_json(body)
    except ValidationError as err:
        raise _payload_error(err) from err
    return _event(message, tenant_id)


def to_event(raw: Mapping[str, object], *, tenant_id: str) -> InboundMessage:
    """A message (as decoded JSON) as an InboundMessage; a new conversation if the
    message names none."""
    try:
        message = _MessageIn.model_validate(raw)
    except ValidationError as err:
        raise _payload_error(err) from err
    return _event(message, tenant_id)


def _payload_error(err: ValidationError) -> PayloadError:
    first = err.errors()[0]
    where = ".".join(str(p) for p in first.get("loc", ()))
    reason = str(first.get("msg", "invalid")).removeprefix("Value error, ")
    return PayloadError(f"{where}: {reason}" if where else reason)


def _event(message: _MessageIn, tenant_id: str) -> InboundMessage:
    return InboundMessage(
        conversation_id=conversation_id(tenant_id, message.conversation_id or new_id()),
        tenant_id=tenant_id,
        channel=Channel.INAPP,
        channel_message_id=message.client_message_id,
        customer_id=message.customer_id,
        text=message.text,
        # Namespaced: the app's keys cannot overwrite what connectors put there.
        metadata={f"app.{k}": v for k, v in message.metadata.items()},
    )


def callback_body(reply: Reply) -> bytes:
    """The JSON POSTed to the app backend for a reply."""
    return json.dumps(
        {
            "type": "reply",
            "reply_id": reply.reply_id,
            "in_reply_to": reply.in_reply_to,
            "conversation_id": reply.conversation_id,
            "customer_id": reply.customer_id,
            "text": reply.text,
            "language": reply.language,
            "sources": reply.sources,
            "handoff": reply.handoff,
        },
        ensure_ascii=False,
    ).encode()


def signed_headers(secret: str, body: bytes, now: float | None = None) -> dict[str, str]:
    """The headers that let the backend check a callback came from clawdesk, now."""
    timestamp = int(time.time() if now is None else now)
    return {
        "Content-Type": "application/json; charset=utf-8",
        CLAWDESK_TIMESTAMP_HEADER: str(timestamp),
        CLAWDESK_SIGNATURE_HEADER: sign_timestamped(secret, timestamp, body),
    }


Publish = Callable[[Reply], Awaitable[str]]


async def send(
    reply: Reply,
    *,
    settings: ChannelSettings | None = None,
    client: httpx.AsyncClient | None = None,
    publish: Publish | None = None,
    resolve: ssrf.Resolver | None = None,
) -> str:
    """POST the signed reply to the tenant's callback URL; returns the backend's `id`
    for it if it answers one, else the reply id. The URL's host must resolve to public
    addresses only (unless `inapp_allow_private_callbacks`); `resolve` replaces DNS.

    A tenant without a callback URL gets its replies as before: on the outbound topic,
    which the gateway pushes to the conversation's WebSocket (`publish`).
    """
    settings = settings or channel_settings()
    url = settings.inapp_callback_urls.get(reply.tenant_id)
    if not url:
        if publish is None:
            publish = web.send
        return await publish(reply)
    secret = require(settings.inapp_webhook_secret, "inapp_webhook_secret")
    body = callback_body(reply)
    async with using_client(settings, client) as http:
        async for attempt in send_retrying(settings):
            with attempt:
                # Resolved and checked per attempt: the name may point elsewhere by now.
                target = await callback_target(url, settings, resolve)
                # Signed per attempt: a retry after a wait carries a fresh timestamp.
                headers = {
                    **signed_headers(secret, body),
                    **target.headers,
                    # The same on every attempt and every re-send of the reply: a worker
                    # killed after the backend took it but before we recorded it sends
                    # it again, and the backend drops the repeat by this key.
                    IDEMPOTENCY_HEADER: reply.reply_id,
                }
                with transport_errors("inapp callback"):
                    response = await http.post(
                        target.url, content=body, headers=headers, extensions=target.extensions
                    )
                return _provider_id(response, reply)
    raise AssertionError("unreachable: the retry loop returns or raises")


@dataclass(frozen=True)
class CallbackTarget:
    """Where a callback goes: the URL with its host replaced by the checked address, and
    what keeps the request addressed to the name (Host header, TLS server name)."""

    url: httpx.URL
    headers: dict[str, str]
    extensions: dict[str, Any]


async def callback_target(
    url: str, settings: ChannelSettings, resolve: ssrf.Resolver | None = None
) -> CallbackTarget:
    """The checked address to POST `url` to: DeliveryError if the host is (or resolves
    to) an internal address that settings do not allow, ProviderUnavailable if it does
    not resolve now."""
    try:
        addresses = await ssrf.resolve_public(
            url, allow_private=settings.inapp_allow_private_callbacks, resolve=resolve
        )
    except ssrf.ForbiddenTarget as err:
        raise DeliveryError(f"inapp callback refused: {err}") from err
    except OSError as err:  # socket.gaierror: no answer from DNS now
        raise ProviderUnavailable(f"inapp callback: cannot resolve ({err})") from err
    parsed = httpx.URL(url)
    # Connect to the address that was checked, not to a second lookup of the name (which
    # a rebinding DNS server could answer with an internal address).
    pinned = parsed.copy_with(host=addresses[0])
    extensions: dict[str, Any] = {}
    if parsed.scheme == "https":
        extensions["sni_hostname"] = parsed.host  # the certificate is checked for the name
    return CallbackTarget(pinned, {"Host": parsed.netloc.decode("ascii")}, extensions)


def _provider_id(response: httpx.Response, reply: Reply) -> str:
    raise_for_retry(response, "inapp callback")
    if not response.is_success:
        raise DeliveryError(f"inapp callback refused: HTTP {response.status_code}")
    try:
        payload = response.json()
    except ValueError:
        return reply.reply_id
    found = payload.get("id") if isinstance(payload, dict) else None
    return str(found)[:200] if found else reply.reply_id


# --- the channel's parts ------------------------------------------------------------


def routes(intake: InAppIntake) -> APIRouter:
    """The in-app chat API: `POST /api/inapp/messages` and a conversation's history and
    deliveries, each with the tenant's API key."""
    router = APIRouter()

    @router.post("/api/inapp/messages", status_code=202)
    async def post_inapp_message(request: Request, api_key: _ApiKey = None) -> dict[str, str]:
        """Enqueue an app user's message; answer once the broker has it."""
        settings = intake.settings(request)
        with intake.rejecting("inapp"):
            tenant = authenticate(api_key, settings)
        body = await intake.read_body(request, settings.webhook_max_body_bytes, "inapp")
        with intake.rejecting("inapp", payload_status=422):
            message = parse_message(body, tenant_id=tenant)
        await intake.accept(request, "inapp", [message])
        return {
            "conversation_id": message.conversation_id,
            "event_id": message.event_id,
            # Opens the reply socket (/ws/{id}?token=) for a tenant without a callback URL.
            "token": intake.conversation_token(request, tenant, message.conversation_id),
        }

    def require_owner(request: Request, api_key: str | None, conversation: str) -> None:
        """401 unless the key is a tenant's, 404 unless the conversation is that tenant's."""
        with intake.rejecting("inapp"):
            tenant = authenticate(api_key, intake.settings(request))
        if not owns(tenant, conversation):
            raise intake.error(404, "unknown conversation")

    @router.get("/api/inapp/conversations/{conversation_id}/messages")
    async def get_inapp_history(
        conversation_id: _ConversationPath, request: Request, api_key: _ApiKey = None
    ) -> list[dict[str, Any]]:
        """The conversation's stored messages, oldest first (only the key's tenant's)."""
        require_owner(request, api_key, conversation_id)
        return await intake.history(request, conversation_id)

    @router.get("/api/inapp/conversations/{conversation_id}/deliveries")
    async def get_inapp_deliveries(
        conversation_id: _ConversationPath, request: Request, api_key: _ApiKey = None
    ) -> list[dict[str, Any]]:
        """Each reply of the conversation with its delivery status (only the key's tenant's)."""
        require_owner(request, api_key, conversation_id)
        return await intake.deliveries(request, conversation_id)

    return router


class InAppIntake(Intake, Protocol):
    """The intake, with what the in-app API needs besides: reply-socket tokens and the
    conversation's stored history and deliveries (as JSON objects)."""

    def conversation_token(self, request: Request, tenant_id: str, conversation_id: str) -> str:
        """A token that opens the conversation's reply socket."""
        ...

    async def history(self, request: Request, conversation_id: str) -> list[dict[str, Any]]:
        """The conversation's messages, oldest first."""
        ...

    async def deliveries(self, request: Request, conversation_id: str) -> list[dict[str, Any]]:
        """Each reply of the conversation with its delivery status."""
        ...


CHANNEL = ChannelModule(
    name="inapp",
    sender=send,
    settings_loader=channel_settings,
    routes=routes,  # type: ignore[arg-type]  # needs the in-app intake (the gateway's is one)
)
