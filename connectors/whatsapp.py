"""The WhatsApp Cloud API channel.

Inbound: Meta POSTs change notifications signed with the app secret
(`X-Hub-Signature-256: sha256=<hex HMAC of the raw body>`); each text or interactive
(button / list) message becomes an InboundMessage, each status a DeliveryReceipt.
Outbound: `POST {base}/{phone_number_id}/messages` with the reply id as
`biz_opaque_callback_data`, which Meta echoes on the statuses of that message, so a
receipt names the reply it is about without a lookup.

Payload shape (trimmed)::

    {"object": "whatsapp_business_account",
     "entry": [{"id": "<WABA id>", "changes": [{"field": "messages", "value": {
        "metadata": {"phone_number_id": "1069..."},
        "contacts": [{"wa_id": "4917...", "profile": {"name": "Ana"}}],
        "messages": [{"id": "wamid.X", "from": "4917...", "type": "text",
                      "text": {"body": "hi"}}],
        "statuses": [{"id": "wamid.Y", "status": "read", "recipient_id": "4917...",
                      "biz_opaque_callback_data": "r-..."}]}}]}]}
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Annotated, Any

import httpx
from fastapi import APIRouter, Header, Query, Request
from fastapi.responses import JSONResponse, PlainTextResponse, Response
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from clawdesk.settings import WhatsAppTemplate
from connectors.base import ChannelModule, Intake
from connectors.choices import intent_of, text_of
from connectors.config import (
    ChannelSettings,
    DeliveryError,
    NotSendable,
    ProviderUnavailable,
    channel_settings,
    raise_for_retry,
    require,
    send_retrying,
    transport_errors,
    using_client,
)
from connectors.media import Fetched, MediaGone, OutgoingFile, check_size, download
from connectors.signatures import (
    PayloadError,
    SignatureError,
    UnknownTenant,
    secrets_equal,
    verify_sha256_header,
)
from schemas import (
    Attachment,
    Channel,
    DeliveryReceipt,
    DeliveryStatus,
    InboundMessage,
    MessageKind,
    Reply,
    utc_now,
)

log = logging.getLogger(__name__)

SIGNATURE_HEADER = "X-Hub-Signature-256"
META_PHONE_NUMBER_ID = "whatsapp_phone_number_id"
META_WA_ID = "whatsapp_wa_id"
META_CHOICE_ID = "whatsapp_choice_id"
META_CUSTOMER_AT = "whatsapp_customer_at"  # when the customer last wrote (ISO 8601)
MAX_TEXT = 4096  # the Cloud API's limit on a text message body
# Graph error codes that mean "too many messages now", whatever the HTTP status.
_RATE_LIMIT_CODES = frozenset({4, 80007, 130429, 131056})
_REENGAGEMENT = 131047  # more than 24 hours since the customer last wrote

_STATUSES = {
    "sent": DeliveryStatus.SENT,
    "delivered": DeliveryStatus.DELIVERED,
    "read": DeliveryStatus.READ,
    "failed": DeliveryStatus.FAILED,
}

# Account and user ids go into conversation ids (URLs, topic keys): keep them plain.
_AccountId = Annotated[str, Field(pattern=r"^[A-Za-z0-9_.-]{1,64}$")]
# wamids are printable ASCII (base64 and dots); anything else is not Meta's.
_MessageId = Annotated[str, Field(pattern=r"^[!-~]{1,200}$")]


class _Shape(BaseModel):
    model_config = ConfigDict(extra="ignore", frozen=True)


class _Text(_Shape):
    body: str = Field(min_length=1, max_length=20_000)


class _Choice(_Shape):
    id: str = Field(min_length=1, max_length=256)
    title: str = Field(min_length=1, max_length=1_000)


class _Interactive(_Shape):
    type: str
    button_reply: _Choice | None = None
    list_reply: _Choice | None = None


class _Button(_Shape):
    text: str = Field(min_length=1, max_length=1_000)
    payload: str | None = Field(default=None, max_length=256)


class _Media(_Shape):
    id: str = Field(min_length=1, max_length=256)
    mime_type: str | None = Field(default=None, max_length=200)
    caption: str | None = Field(default=None, max_length=20_000)
    filename: str | None = Field(default=None, max_length=255)


class _Message(_Shape):
    id: _MessageId
    sender: _AccountId = Field(alias="from")
    type: str
    timestamp: str | None = Field(default=None, pattern=r"^[0-9]{1,12}$")
    text: _Text | None = None
    interactive: _Interactive | None = None
    button: _Button | None = None
    image: _Media | None = None
    document: _Media | None = None
    audio: _Media | None = None
    video: _Media | None = None


class _Profile(_Shape):
    name: str | None = Field(default=None, max_length=200)


class _Contact(_Shape):
    wa_id: str | None = None
    profile: _Profile | None = None


class _Error(_Shape):
    code: int | None = None
    title: str | None = None


class _Status(_Shape):
    id: _MessageId
    status: str
    recipient_id: _AccountId
    biz_opaque_callback_data: str | None = Field(default=None, max_length=512)
    errors: list[_Error] = Field(default_factory=list)


class _Metadata(_Shape):
    phone_number_id: _AccountId


class _Value(_Shape):
    metadata: _Metadata | None = None
    contacts: list[_Contact] = Field(default_factory=list)
    messages: list[_Message] = Field(default_factory=list)
    statuses: list[_Status] = Field(default_factory=list)


class _Change(_Shape):
    value: _Value


class _Entry(_Shape):
    changes: list[_Change] = Field(default_factory=list)


class _Notification(_Shape):
    object: str
    entry: list[_Entry]


@dataclass
class WebhookEvents:
    """What one notification carries."""

    messages: list[InboundMessage] = field(default_factory=list)
    receipts: list[DeliveryReceipt] = field(default_factory=list)


TenantFor = Callable[[str], str | None]


def tenant_resolver(settings: ChannelSettings, default_tenant: str) -> TenantFor:
    """phone_number_id → tenant: the configured map, or everything to the default."""
    if not settings.whatsapp_tenants:
        return lambda _phone_number_id: default_tenant
    return settings.whatsapp_tenants.get


def verify_subscription(
    mode: str | None, token: str | None, challenge: str | None, settings: ChannelSettings
) -> str:
    """The challenge to echo for Meta's GET verification, or SignatureError."""
    expected = settings.whatsapp_verify_token
    if mode != "subscribe" or expected is None or not challenge:
        raise SignatureError("not a subscription request")
    if not secrets_equal(token, expected.get_secret_value()):
        raise SignatureError("bad verify token")
    return challenge


def verify(body: bytes, signature: str | None, settings: ChannelSettings) -> None:
    """Check X-Hub-Signature-256 against the app secret (SignatureError if wrong)."""
    secret = _app_secret(settings)
    verify_sha256_header(signature, secret, body)


def _app_secret(settings: ChannelSettings) -> str:
    """The app secret (SignatureError when unset: nothing can be verified)."""
    if settings.whatsapp_app_secret is None:
        raise SignatureError("whatsapp is not configured")
    return settings.whatsapp_app_secret.get_secret_value()


def parse_webhook(body: bytes, tenant_for: TenantFor) -> WebhookEvents:
    """Every message and status of a (verified) notification.

    All or nothing: one malformed message makes the whole body a PayloadError, so a
    half-understood notification never half-enqueues.
    """
    try:
        notification = _Notification.model_validate_json(body)
    except ValidationError as err:
        raise PayloadError(_summary(err)) from err
    if notification.object != "whatsapp_business_account":
        raise PayloadError(f"not a WhatsApp notification: object={notification.object[:50]!r}")
    events = WebhookEvents()
    for change in (c for e in notification.entry for c in e.changes):
        _collect(change.value, tenant_for, events)
    return events


def _collect(value: _Value, tenant_for: TenantFor, events: WebhookEvents) -> None:
    if not (value.messages or value.statuses):
        return
    if value.metadata is None:
        raise PayloadError("value.metadata.phone_number_id is missing")
    phone_number_id = value.metadata.phone_number_id
    tenant_id = tenant_for(phone_number_id)
    if tenant_id is None:
        raise UnknownTenant(f"no tenant for phone number id {phone_number_id}")
    names = {c.wa_id: c.profile.name for c in value.contacts if c.profile and c.profile.name}
    for message in value.messages:
        event = _to_event(message, phone_number_id, tenant_id, names.get(message.sender))
        if event is not None:
            events.messages.append(event)
    for status in value.statuses:
        receipt = _to_receipt(status, phone_number_id, tenant_id)
        if receipt is not None:
            events.receipts.append(receipt)


def to_event(
    raw: Mapping[str, Any], *, phone_number_id: str, tenant_id: str
) -> InboundMessage | None:
    """One `messages[]` item as an InboundMessage; None for a kind we do not read
    (media, location, reactions...). Raises PayloadError when it is malformed."""
    try:
        message = _Message.model_validate(raw)
    except ValidationError as err:
        raise PayloadError(_summary(err)) from err
    return _to_event(message, phone_number_id, tenant_id, None)


def conversation_id(phone_number_id: str, wa_id: str) -> str:
    """One conversation per business number and customer."""
    return f"whatsapp:{phone_number_id}:{wa_id}"


def _to_event(
    message: _Message, phone_number_id: str, tenant_id: str, name: str | None
) -> InboundMessage | None:
    read = _read(message)
    if read is None:
        log.info("skipping whatsapp message", extra={"type": message.type[:50]})
        return None
    metadata = {
        META_PHONE_NUMBER_ID: phone_number_id,
        META_WA_ID: message.sender,
        # The customer-service window opens with each customer message.
        META_CUSTOMER_AT: _sent_at(message).isoformat(),
    }
    if read.choice:
        metadata[META_CHOICE_ID] = read.choice
    if name:
        metadata["customer_name"] = name
    return InboundMessage(
        conversation_id=conversation_id(phone_number_id, message.sender),
        tenant_id=tenant_id,
        channel=Channel.WHATSAPP,
        channel_message_id=message.id,
        customer_id=message.sender,
        text=read.text,
        metadata=metadata,
        **read.fields,
    )


def _sent_at(message: _Message) -> datetime:
    if message.timestamp is not None:
        return datetime.fromtimestamp(int(message.timestamp), UTC)
    return utc_now()


@dataclass(frozen=True)
class _Read:
    """What a message says: its text, the option chosen, and the event's other fields."""

    text: str
    choice: str | None = None
    fields: dict[str, Any] = field(default_factory=dict)


def _read(message: _Message) -> _Read | None:
    """What a message says; None when it has nothing for us (reactions, locations...)."""
    if message.type == "text":
        if message.text is None:
            raise PayloadError(f"text message {message.id} has no text")
        return _Read(message.text.body)
    if message.type == "interactive" and message.interactive is not None:
        choice = message.interactive.button_reply or message.interactive.list_reply
        if message.interactive.type in ("button_reply", "list_reply"):
            if choice is None:
                raise PayloadError(f"interactive message {message.id} has no reply")
            return _chosen(choice.id, choice.title)
    if message.type == "button" and message.button is not None:
        return _chosen(message.button.payload or message.button.text, message.button.text)
    if message.type in _MEDIA_KINDS:
        media = getattr(message, message.type)
        if media is None:
            raise PayloadError(f"{message.type} message {message.id} has no {message.type}")
        attachment = Attachment(
            kind=_MEDIA_KINDS[message.type],  # type: ignore[arg-type]
            provider_ref=media.id,
            declared_type=media.mime_type or "",
            filename=media.filename or "",
        )
        caption = (media.caption or "").strip()
        kind = MessageKind.TEXT if caption else MessageKind.MEDIA
        return _Read(caption, fields={"kind": kind, "attachments": [attachment]})
    return None


_MEDIA_KINDS = {"image": "image", "document": "file", "audio": "audio", "video": "video"}


def _chosen(choice_id: str, title: str) -> _Read:
    """A reply button or list row, read by its id: `intent:<name>` states the intent."""
    intent = intent_of(choice_id)
    return _Read(
        text_of(choice_id, intent, title),
        choice_id,
        {"kind": MessageKind.CHOICE, "choice": choice_id[:256], "intent": intent},
    )


def _to_receipt(status: _Status, phone_number_id: str, tenant_id: str) -> DeliveryReceipt | None:
    delivery = _STATUSES.get(status.status)
    if delivery is None:
        return None
    detail = "; ".join(f"{e.code}: {e.title}" for e in status.errors)[:500]
    return DeliveryReceipt(
        conversation_id=conversation_id(phone_number_id, status.recipient_id),
        tenant_id=tenant_id,
        channel=Channel.WHATSAPP,
        # Replies we sent carry their id back; other messages are named by their wamid.
        reply_id=status.biz_opaque_callback_data or status.id,
        status=delivery,
        provider_message_id=status.id,
        detail=detail,
    )


def _summary(err: ValidationError) -> str:
    first = err.errors()[0]
    where = ".".join(str(p) for p in first.get("loc", ()))
    return f"malformed notification: {where}: {first.get('msg', 'invalid')}"[:300]


class OutsideWindow(NotSendable):
    """The customer last wrote more than 24 hours ago: WhatsApp takes only an approved
    template now, and none is configured."""


def window_open(metadata: Mapping[str, str], settings: ChannelSettings, *, now: datetime) -> bool:
    """Whether a free-form message may still go to the customer: within
    `whatsapp_window_s` of their last message (unknown: assumed open, Meta decides)."""
    stamp = metadata.get(META_CUSTOMER_AT)
    if not stamp:
        return True
    try:
        last = datetime.fromisoformat(stamp)
    except ValueError:
        return True
    return (now - last).total_seconds() < settings.whatsapp_window_s


def template_message(template: WhatsAppTemplate, reply: Reply) -> dict[str, Any]:
    """The `type: template` message body of a reply (parameters filled in)."""
    values = {"text": reply.text[:1000], "customer_name": reply.metadata.get("customer_name", "")}
    parameters = [
        {"type": "text", "text": p.format_map(_Blank(values)) or "-"} for p in template.parameters
    ]
    body: dict[str, Any] = {"name": template.name, "language": {"code": template.language}}
    if parameters:
        body["components"] = [{"type": "body", "parameters": parameters}]
    return body


class _Blank(dict[str, str]):
    def __missing__(self, key: str) -> str:
        return ""


async def send(
    reply: Reply,
    *,
    settings: ChannelSettings | None = None,
    client: httpx.AsyncClient | None = None,
) -> str:
    """Send the reply as text (split at the 4096-character limit); the first part's wamid.

    Outside the customer-service window the reply goes as the configured approved
    template, or is refused (OutsideWindow) when there is none: Meta would refuse
    the text anyway (error 131047), and the agent must know it did not go out."""
    settings = settings or channel_settings()
    token = require(settings.whatsapp_token, "whatsapp_token")
    phone_number_id = reply.metadata.get(META_PHONE_NUMBER_ID) or settings.whatsapp_phone_number_id
    if not phone_number_id:
        raise DeliveryError("no WhatsApp phone number id for the reply")
    url = f"{settings.whatsapp_api_base.rstrip('/')}/{phone_number_id}/messages"
    to = reply.metadata.get(META_WA_ID) or reply.customer_id
    base = {
        "messaging_product": "whatsapp",
        "recipient_type": "individual",
        "to": to,
        "biz_opaque_callback_data": reply.reply_id[:512],
    }
    if window_open(reply.metadata, settings, now=utc_now()):
        parts = [reply.text[i : i + MAX_TEXT] for i in range(0, len(reply.text), MAX_TEXT)]
        bodies = [
            {**base, "type": "text", "text": {"body": part, "preview_url": False}}
            for part in parts or [""]
        ]
    elif settings.whatsapp_template is not None:
        template = template_message(settings.whatsapp_template, reply)
        bodies = [{**base, "type": "template", "template": template}]
    else:
        raise OutsideWindow(WINDOW_CLOSED)
    ids: list[str] = []
    async with using_client(settings, client) as http:
        for body in bodies:
            ids.append(await _post(http, url, token, body, settings))
    return ids[0]


MAX_CAPTION = 1024  # an image message's caption limit


async def send_media(
    reply: Reply,
    files: Sequence[OutgoingFile],
    *,
    settings: ChannelSettings | None = None,
    client: httpx.AsyncClient | None = None,
) -> str:
    """Send each image as an image message: uploaded first (`POST /{phone-number-id}/
    media`, multipart), then sent by the media id it got, the text as the first one's
    caption (a longer text follows as a text message). Only inside the customer-service
    window: a template carries no agent's image (OutsideWindow otherwise)."""
    settings = settings or channel_settings()
    token = require(settings.whatsapp_token, "whatsapp_token")
    phone_number_id = reply.metadata.get(META_PHONE_NUMBER_ID) or settings.whatsapp_phone_number_id
    if not phone_number_id:
        raise DeliveryError("no WhatsApp phone number id for the reply")
    if not window_open(reply.metadata, settings, now=utc_now()):
        raise OutsideWindow(WINDOW_CLOSED)
    base_url = f"{settings.whatsapp_api_base.rstrip('/')}/{phone_number_id}"
    caption = reply.text if len(reply.text) <= MAX_CAPTION else ""
    ids: list[str] = []
    async with using_client(settings, client) as http:
        for index, file in enumerate(files):
            media_id = await _upload(http, f"{base_url}/media", token, file, settings)
            image: dict[str, str] = {"id": media_id}
            if index == 0 and caption:
                image["caption"] = caption
            body = {
                "messaging_product": "whatsapp",
                "recipient_type": "individual",
                "to": reply.metadata.get(META_WA_ID) or reply.customer_id,
                "biz_opaque_callback_data": reply.reply_id[:512],
                "type": "image",
                "image": image,
            }
            ids.append(await _post(http, f"{base_url}/messages", token, body, settings))
        if (reply.text and not caption) or not ids:
            ids.append(await send(reply, settings=settings, client=http))
    return ids[0]


async def _upload(
    http: httpx.AsyncClient, url: str, token: str, file: OutgoingFile, settings: ChannelSettings
) -> str:
    """Upload a file to Meta; its media id."""
    async for attempt in send_retrying(settings):
        with attempt:
            with transport_errors("whatsapp media upload"):
                response = await http.post(
                    url,
                    data={"messaging_product": "whatsapp", "type": file.content_type},
                    files={"file": (file.filename or "image", file.data, file.content_type)},
                    headers={"Authorization": f"Bearer {token}"},
                )
            raise_for_retry(response, "whatsapp media upload")
            try:
                payload = response.json()
            except ValueError:
                payload = {}
            media_id = payload.get("id") if isinstance(payload, dict) else None
            if not response.is_success or not isinstance(media_id, str):
                raise DeliveryError(f"whatsapp media upload failed: HTTP {response.status_code}")
            return media_id
    raise AssertionError("unreachable: the retry loop returns or raises")


WINDOW_CLOSED = (
    "not sent: the customer last wrote over 24 hours ago, and WhatsApp then takes only an "
    "approved template message (configure CLAWDESK_WHATSAPP_TEMPLATE)"
)


async def _post(
    http: httpx.AsyncClient, url: str, token: str, body: dict[str, Any], settings: ChannelSettings
) -> str:
    async for attempt in send_retrying(settings):
        with attempt:
            with transport_errors("whatsapp send"):
                response = await http.post(
                    url, json=body, headers={"Authorization": f"Bearer {token}"}
                )
            return _message_id(response)
    raise AssertionError("unreachable: the retry loop returns or raises")


def _message_id(response: httpx.Response) -> str:
    raise_for_retry(response, "whatsapp send")
    try:
        payload = response.json()
    except ValueError:
        payload = {}
    if response.is_success:
        try:
            return str(payload["messages"][0]["id"])
        except (KeyError, IndexError, TypeError) as err:
            raise DeliveryError("whatsapp answered without a message id") from err
    error = payload.get("error", {}) if isinstance(payload, dict) else {}
    code = error.get("code") if isinstance(error, dict) else None
    message = error.get("message", "") if isinstance(error, dict) else ""
    if code in _RATE_LIMIT_CODES:
        raise ProviderUnavailable(f"whatsapp rate limit {code}: {message}")
    if code == _REENGAGEMENT:
        raise OutsideWindow(f"{WINDOW_CLOSED} (Meta: {code} {message})"[:500])
    raise DeliveryError(f"whatsapp send failed: HTTP {response.status_code} {code}: {message}")


async def fetch_media(
    attachment: Attachment,
    *,
    max_bytes: int,
    settings: ChannelSettings | None = None,
    client: httpx.AsyncClient | None = None,
) -> Fetched:
    """A file the customer sent: `GET /{media-id}` gives a short-lived URL (and the
    size), which is fetched with the same bearer token."""
    settings = settings or channel_settings()
    token = require(settings.whatsapp_token, "whatsapp_token")
    headers = {"Authorization": f"Bearer {token}"}
    url = f"{settings.whatsapp_api_base.rstrip('/')}/{attachment.provider_ref}"
    async with using_client(settings, client) as http:
        with transport_errors("whatsapp media"):
            response = await http.get(url, headers=headers)
        raise_for_retry(response, "whatsapp media")
        try:
            payload = response.json()
        except ValueError:
            payload = None
        if not response.is_success or not isinstance(payload, dict):
            status = response.status_code
            raise MediaGone(f"whatsapp media {attachment.provider_ref}: HTTP {status}")
        media_url = payload.get("url")
        if not isinstance(media_url, str) or not media_url.startswith(("https://", "http://")):
            raise DeliveryError("whatsapp media answered without a URL")
        check_size(payload.get("file_size"), max_bytes)
        fetched = await download(
            http, media_url, max_bytes=max_bytes, what="whatsapp media", headers=headers
        )
    declared = payload.get("mime_type")
    return Fetched(fetched.data, declared if isinstance(declared, str) else fetched.declared_type)


# --- the channel's parts ------------------------------------------------------------


def routes(intake: Intake) -> APIRouter:
    """`GET /webhooks/whatsapp` (Meta's verification) and `POST` (notifications)."""
    router = APIRouter()

    @router.get("/webhooks/whatsapp", response_class=PlainTextResponse)
    async def whatsapp_subscribe(
        request: Request,
        mode: Annotated[str | None, Query(alias="hub.mode")] = None,
        token: Annotated[str | None, Query(alias="hub.verify_token")] = None,
        challenge: Annotated[str | None, Query(alias="hub.challenge", max_length=200)] = None,
    ) -> Response:
        """Meta's verification of the callback URL: echo the challenge (403 otherwise)."""
        try:
            echo = verify_subscription(mode, token, challenge, intake.settings(request))
        except SignatureError as err:
            intake.count("whatsapp", "unauthenticated")
            return JSONResponse({"error": str(err)}, status_code=403)
        return PlainTextResponse(echo)

    @router.post("/webhooks/whatsapp")
    async def whatsapp_notification(
        request: Request,
        signature: Annotated[str | None, Header(alias=SIGNATURE_HEADER)] = None,
    ) -> dict[str, int]:
        """Messages and delivery statuses from the WhatsApp Cloud API."""
        settings = intake.settings(request)
        if settings.whatsapp_app_secret is None:
            raise intake.disabled("whatsapp")
        body = await intake.read_body(request, settings.webhook_max_body_bytes, "whatsapp")
        with intake.rejecting("whatsapp"):
            verify(body, signature, settings)
            tenants = tenant_resolver(settings, intake.default_tenant(request))
            events = parse_webhook(body, tenants)
        await intake.accept(request, "whatsapp", events.messages, events.receipts)
        return {"enqueued": len(events.messages), "receipts": len(events.receipts)}

    return router


def refuses_reply(metadata: Mapping[str, str], settings: ChannelSettings) -> str | None:
    """Why a reply cannot go now: the 24-hour window closed and no template is set."""
    if settings.whatsapp_template or window_open(metadata, settings, now=utc_now()):
        return None
    return WINDOW_CLOSED


CHANNEL = ChannelModule(
    name="whatsapp",
    sender=send,
    settings_loader=channel_settings,
    routes=routes,
    media_fetcher=fetch_media,
    reply_refusal=refuses_reply,
    media_sender=send_media,
)
