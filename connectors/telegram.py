"""The Telegram Bot API channel.

Inbound: Telegram POSTs each Update to the webhook set with `secret_token`, which it
repeats in `X-Telegram-Bot-Api-Secret-Token`; for development, `poll_updates` reads
the same Updates by long polling `getUpdates`. What becomes an InboundMessage:
- a text, or a photo / document / voice / audio / video with or without a caption (the
  caption is the text; the files are attachments ingest fetches with `getFile`);
- `/start` and `/help` as commands (answered with the tenant's welcome, not the NLU);
- a pressed inline button (`callback_query`) as a choice: its data is what the customer
  chose; the reply first answers the query (`answerCallbackQuery`) to stop the spinner;
- an edited message, tied to the one it edits (answered only if that one was not);
- in a group, only what is meant for the bot (a mention of it, a reply to it, a command
  to it); each member has their own conversation there, answered in the group.
Stickers, locations and service messages are ignored.
Outbound: `POST {base}/bot<token>/sendMessage`, honouring the `retry_after` of a 429.

Update shape (trimmed)::

    {"update_id": 10001, "message": {"message_id": 7, "date": 1700000000,
        "chat": {"id": 4242, "type": "private"},
        "from": {"id": 4242, "is_bot": false, "language_code": "en"},
        "text": "where is my order?"}}
"""

from __future__ import annotations

import asyncio
import json
import logging
import re
from collections.abc import AsyncIterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Annotated, Any

import httpx
from fastapi import APIRouter, Header, Request
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from connectors.base import ChannelModule, Intake, NotConfigured, PollSource
from connectors.choices import intent_of, text_of
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
from connectors.media import (
    Fetched,
    MediaGone,
    MediaTooLarge,
    OutgoingFile,
    check_size,
    download,
)
from connectors.signatures import PayloadError, SignatureError, secrets_equal
from schemas import Attachment, Channel, InboundMessage, MessageKind, Reply

log = logging.getLogger(__name__)

SECRET_HEADER = "X-Telegram-Bot-Api-Secret-Token"
META_CHAT_ID = "telegram_chat_id"
META_REPLY_TO = "telegram_reply_to"  # in a group, the member's message the bot answers
META_CALLBACK_ID = "telegram_callback_query_id"
WELCOME_COMMANDS = frozenset({"start", "help"})
MAX_TEXT = 4096  # sendMessage's limit
MAX_CAPTION = 1024  # sendPhoto's caption limit
POLL_TIMEOUT_S = 30
POLL_RETRY_S = 1.0
ALLOWED_UPDATES = '["message", "edited_message", "callback_query"]'

_Int64 = Annotated[int, Field(ge=-(2**63), lt=2**63)]


class _Shape(BaseModel):
    model_config = ConfigDict(extra="ignore", frozen=True)


class _Chat(_Shape):
    id: _Int64
    type: str = "private"


class _User(_Shape):
    id: _Int64
    is_bot: bool = False
    username: str | None = Field(default=None, max_length=64)
    language_code: str | None = Field(default=None, max_length=35)


class _Entity(_Shape):
    type: str
    offset: int = Field(ge=0)
    length: int = Field(ge=0)
    user: _User | None = None


class _File(_Shape):
    file_id: str = Field(min_length=1, max_length=1000)
    file_size: int | None = Field(default=None, ge=0)
    mime_type: str | None = Field(default=None, max_length=200)
    file_name: str | None = Field(default=None, max_length=255)


class _Replied(_Shape):
    message_id: _Int64
    sender: _User | None = Field(default=None, alias="from")


class _Message(_Shape):
    message_id: _Int64
    chat: _Chat
    sender: _User | None = Field(default=None, alias="from")
    text: str | None = Field(default=None, max_length=20_000)
    caption: str | None = Field(default=None, max_length=20_000)
    entities: list[_Entity] = Field(default_factory=list)
    caption_entities: list[_Entity] = Field(default_factory=list)
    reply_to_message: _Replied | None = None
    edit_date: int | None = None
    photo: list[_File] = Field(default_factory=list)
    document: _File | None = None
    voice: _File | None = None
    audio: _File | None = None
    video: _File | None = None


class _CallbackQuery(_Shape):
    id: str = Field(min_length=1, max_length=200)
    sender: _User = Field(alias="from")
    message: _Message | None = None
    data: str | None = Field(default=None, max_length=256)


class _Update(_Shape):
    update_id: _Int64
    message: _Message | None = None
    edited_message: _Message | None = None
    callback_query: _CallbackQuery | None = None


def verify(secret_header: str | None, settings: ChannelSettings) -> None:
    """Check the secret token Telegram repeats on every webhook call."""
    expected = settings.telegram_secret_token
    if expected is None:
        raise SignatureError("telegram is not configured")
    if not secrets_equal(secret_header, expected.get_secret_value()):
        raise SignatureError("bad secret token")


@dataclass(frozen=True)
class Bot:
    """Who the bot is, to tell in a group whether a message is meant for it."""

    id: int | None = None
    username: str = ""

    @classmethod
    def of(cls, settings: ChannelSettings | None) -> Bot:
        """The bot of the settings: its id is the numeric head of its token."""
        if settings is None:
            return cls()
        secret = settings.telegram_bot_token
        token = secret.get_secret_value() if secret else ""
        head = token.split(":", 1)[0]
        return cls(int(head) if head.isdigit() else None, settings.telegram_bot_username)

    def is_me(self, user: _User | None) -> bool:
        """Whether a user is this bot."""
        if user is None or not user.is_bot:
            return False
        if self.id is not None and user.id == self.id:
            return True
        return bool(self.username) and (user.username or "").lower() == self.username.lower()


def parse_update(
    body: bytes, *, tenant_id: str, settings: ChannelSettings | None = None
) -> InboundMessage | None:
    """The InboundMessage of a webhook body; None for an update we do not read."""
    try:
        update = _Update.model_validate_json(body)
    except ValidationError as err:
        raise PayloadError(f"malformed update: {err.errors()[0].get('msg', '')}"[:300]) from err
    return _to_event(update, tenant_id, Bot.of(settings))


def to_event(
    raw: Mapping[str, Any], *, tenant_id: str, settings: ChannelSettings | None = None
) -> InboundMessage | None:
    """One Update (as decoded JSON) as an InboundMessage, or None if we do not read it."""
    try:
        update = _Update.model_validate(raw)
    except ValidationError as err:
        raise PayloadError(f"malformed update: {err.errors()[0].get('msg', '')}"[:300]) from err
    return _to_event(update, tenant_id, Bot.of(settings))


def update_id_of(raw: Mapping[str, Any]) -> int | None:
    """The update_id of a decoded Update, if it has a usable one."""
    value = raw.get("update_id")
    return value if isinstance(value, int) and not isinstance(value, bool) else None


def _to_event(update: _Update, tenant_id: str, bot: Bot) -> InboundMessage | None:
    if update.callback_query is not None:
        return _choice(update.callback_query, tenant_id)
    if update.message is not None:
        return _message(update.message, tenant_id, bot, edited=False)
    if update.edited_message is not None:
        return _message(update.edited_message, tenant_id, bot, edited=True)
    return None


def is_group(chat: _Chat) -> bool:
    """Whether many people share the chat (a group or supergroup)."""
    return chat.type in ("group", "supergroup")


def conversation_id(chat_id: int, user_id: int | None, group: bool) -> str:
    """One conversation per private chat; in a group, one per member (each has their
    own memory and requests, though the bot answers in the group)."""
    if group and user_id is not None:
        return f"telegram:{chat_id}:{user_id}"
    return f"telegram:{chat_id}"


def _slice(text: str, entity: _Entity) -> str:
    # Entity offsets count UTF-16 code units, not Python characters.
    units = text.encode("utf-16-le")
    return units[2 * entity.offset : 2 * (entity.offset + entity.length)].decode(
        "utf-16-le", errors="ignore"
    )


def _command(text: str, entities: list[_Entity]) -> tuple[str, str] | None:
    """(name, addressee) of a command opening the text: `/start@shop_bot x` → ("start",
    "shop_bot")."""
    first = next((e for e in entities if e.type == "bot_command" and e.offset == 0), None)
    if first is None:
        return None
    name, _, addressee = _slice(text, first).removeprefix("/").partition("@")
    return name.lower(), addressee


def _addressed(message: _Message, text: str, entities: list[_Entity], bot: Bot) -> bool:
    """Whether a group message is meant for the bot: a reply to it, a mention of it, or
    a command addressed to it (or to no bot in particular)."""
    if message.reply_to_message is not None and bot.is_me(message.reply_to_message.sender):
        return True
    for entity in entities:
        if entity.type == "mention" and bot.username:
            if _slice(text, entity).lower() == f"@{bot.username.lower()}":
                return True
        if entity.type == "text_mention" and entity.user and bot.id == entity.user.id:
            return True
    command = _command(text, entities)
    if command is not None:
        addressee = command[1]
        return not addressee or addressee.lower() == bot.username.lower()
    return False


def _without_mention(text: str, bot: Bot) -> str:
    if not bot.username:
        return text
    return re.sub(rf"@{re.escape(bot.username)}\b", "", text, flags=re.IGNORECASE).strip()


def _attachments(message: _Message) -> list[Attachment]:
    found: list[Attachment] = []
    if message.photo:  # several sizes of one photo: the largest is the last
        largest = message.photo[-1]
        found.append(_attachment("image", largest, "image/jpeg"))
    for kind, file in (
        ("file", message.document),
        ("voice", message.voice),
        ("audio", message.audio),
        ("video", message.video),
    ):
        if file is not None:
            found.append(_attachment(kind, file, ""))
    return found


def _attachment(kind: str, file: _File, default_type: str) -> Attachment:
    return Attachment(
        kind=kind,  # type: ignore[arg-type]
        provider_ref=file.file_id,
        declared_type=file.mime_type or default_type,
        declared_bytes=file.file_size,
        filename=file.file_name or "",
    )


def _message(message: _Message, tenant_id: str, bot: Bot, *, edited: bool) -> InboundMessage | None:
    sender = message.sender
    if sender is not None and sender.is_bot:
        return None
    text = message.text if message.text is not None else (message.caption or "")
    entities = message.entities if message.text is not None else message.caption_entities
    attachments = _attachments(message)
    if not text and not attachments:
        return None  # a sticker, a location, a member joining...
    group = is_group(message.chat)
    if group and not _addressed(message, text, entities, bot):
        return None  # group members talking among themselves
    chat_id = message.chat.id
    metadata = {META_CHAT_ID: str(chat_id)}
    if group:  # answer in the thread of the member's message
        metadata[META_REPLY_TO] = str(message.message_id)
    if sender and sender.language_code:
        metadata["language_hint"] = sender.language_code
    original = f"{chat_id}:{message.message_id}"
    fields: dict[str, Any] = {}
    command = _command(text, entities)
    if command is not None and command[0] in WELCOME_COMMANDS and not edited:
        fields = {"kind": MessageKind.COMMAND, "command": command[0]}
    elif not text:
        fields = {"kind": MessageKind.MEDIA}
    if edited:
        fields["edit_of"] = original
    return InboundMessage(
        conversation_id=conversation_id(chat_id, sender.id if sender else None, group),
        tenant_id=tenant_id,
        channel=Channel.TELEGRAM,
        # An edit is a message of its own (a later edit again), tied to the original.
        channel_message_id=f"{original}:edit:{message.edit_date or 0}" if edited else original,
        # In a group the chat is shared; the customer is the person who wrote.
        customer_id=str(sender.id) if sender else str(chat_id),
        text=_without_mention(text, bot) if group else text,
        metadata=metadata,
        attachments=attachments,
        **fields,
    )


def _choice(query: _CallbackQuery, tenant_id: str) -> InboundMessage | None:
    """A pressed inline button: its data is the customer's choice."""
    if query.sender.is_bot:
        return None
    chat = query.message.chat if query.message else _Chat(id=query.sender.id)
    metadata = {META_CHAT_ID: str(chat.id), META_CALLBACK_ID: query.id}
    if query.sender.language_code:
        metadata["language_hint"] = query.sender.language_code
    choice = query.data or ""
    intent = intent_of(choice) if choice else None
    return InboundMessage(
        conversation_id=conversation_id(chat.id, query.sender.id, is_group(chat)),
        tenant_id=tenant_id,
        channel=Channel.TELEGRAM,
        channel_message_id=f"callback:{query.id}",
        customer_id=str(query.sender.id),
        text=text_of(choice, intent),
        metadata=metadata,
        kind=MessageKind.CHOICE,
        choice=choice or None,
        intent=intent,
    )


def _method_url(settings: ChannelSettings, method: str) -> str:
    token = require(settings.telegram_bot_token, "telegram_bot_token")
    return f"{settings.telegram_api_base.rstrip('/')}/bot{token}/{method}"


def _chat_id(reply: Reply) -> str:
    chat_id = reply.metadata.get(META_CHAT_ID) or reply.conversation_id.split(":")[1]
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
    thread: dict[str, Any] = {}
    if reply.metadata.get(META_REPLY_TO, "").isdigit():
        # In a group: answer in the member's thread (sent anyway if it was deleted).
        thread = {
            "reply_parameters": {
                "message_id": int(reply.metadata[META_REPLY_TO]),
                "allow_sending_without_reply": True,
            }
        }
    async with using_client(settings, client) as http:
        callback = reply.metadata.get(META_CALLBACK_ID)
        if callback:
            await answer_callback(http, settings, callback)
        for part in parts or [""]:
            body = {"chat_id": chat_id, "text": part, **thread}
            result = await _call(http, url, body, settings)
            if not isinstance(result, dict) or "message_id" not in result:
                raise DeliveryError("telegram answered without a message id")
            ids.append(f"{chat_id}:{result['message_id']}")
    return ids[0]


async def send_media(
    reply: Reply,
    files: Sequence[OutgoingFile],
    *,
    settings: ChannelSettings | None = None,
    client: httpx.AsyncClient | None = None,
) -> str:
    """Send each image by `sendPhoto` (uploaded as multipart, so the Bot API needs no
    link to our store), the text as the first one's caption; a text past the caption
    limit follows as a message of its own. Returns the first photo's id."""
    settings = settings or channel_settings()
    url = _method_url(settings, "sendPhoto")
    chat_id = _chat_id(reply)
    caption = reply.text if len(reply.text) <= MAX_CAPTION else ""
    fields: dict[str, str] = {"chat_id": chat_id}
    if reply.metadata.get(META_REPLY_TO, "").isdigit():
        thread = {"message_id": int(reply.metadata[META_REPLY_TO])}
        fields["reply_parameters"] = json.dumps({**thread, "allow_sending_without_reply": True})
    ids: list[str] = []
    async with using_client(settings, client) as http:
        for index, file in enumerate(files):
            form = {**fields, "caption": caption} if index == 0 and caption else fields
            photo = {"photo": (file.filename or "image", file.data, file.content_type)}
            result = await _call(http, url, form, settings, files=photo)
            if not isinstance(result, dict) or "message_id" not in result:
                raise DeliveryError("telegram answered without a message id")
            ids.append(f"{chat_id}:{result['message_id']}")
        if reply.text and not caption:
            await send(reply, settings=settings, client=http)
    if not ids:
        return await send(reply, settings=settings, client=client)
    return ids[0]


async def answer_callback(
    http: httpx.AsyncClient, settings: ChannelSettings, callback_query_id: str
) -> bool:
    """Stop the pressed button's spinner (`answerCallbackQuery`). Best effort: a query
    already answered or too old is refused by Telegram, which must not hold the reply
    back; False then."""
    url = _method_url(settings, "answerCallbackQuery")
    try:
        await _call(http, url, {"callback_query_id": callback_query_id}, settings)
    except (DeliveryError, ProviderUnavailable) as err:
        log.info("callback query not answered", extra={"error": str(err)[:200]})
        return False
    return True


async def _call(
    http: httpx.AsyncClient,
    url: str,
    body: dict[str, Any],
    settings: ChannelSettings,
    *,
    files: dict[str, tuple[str, bytes, str]] | None = None,
) -> Any:
    async for attempt in send_retrying(settings):
        with attempt:
            with transport_errors("telegram send"):
                if files is None:
                    response = await http.post(url, json=body)
                else:  # a file upload is multipart/form-data, its fields strings
                    response = await http.post(url, data=body, files=files)
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
                event = _event_or_none(raw, tenant_id, settings)
                if event is not None:
                    yield event


async def _next_batch(
    http: httpx.AsyncClient, url: str, offset: int | None, timeout_s: int
) -> list[Any]:
    params: dict[str, Any] = {"timeout": timeout_s, "allowed_updates": ALLOWED_UPDATES}
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


def _event_or_none(
    raw: Mapping[str, Any], tenant_id: str, settings: ChannelSettings
) -> InboundMessage | None:
    try:
        return to_event(raw, tenant_id=tenant_id, settings=settings)
    except PayloadError as err:
        log.warning("skipping malformed telegram update", extra={"error": str(err)})
        return None


async def fetch_media(
    attachment: Attachment,
    *,
    max_bytes: int,
    settings: ChannelSettings | None = None,
    client: httpx.AsyncClient | None = None,
) -> Fetched:
    """A file the customer sent: `getFile` names its path, then
    `{base}/file/bot<token>/<file_path>` serves it (bots may fetch up to 20 MB)."""
    settings = settings or channel_settings()
    check_size(attachment.declared_bytes, max_bytes)
    token = require(settings.telegram_bot_token, "telegram_bot_token")
    async with using_client(settings, client) as http:
        url = _method_url(settings, "getFile")
        try:
            result = await _call(http, url, {"file_id": attachment.provider_ref}, settings)
        except DeliveryError as err:
            if "too big" in str(err):
                raise MediaTooLarge(None, max_bytes) from err
            raise MediaGone(str(err)) from err
        if not isinstance(result, dict) or not isinstance(result.get("file_path"), str):
            raise DeliveryError("telegram getFile answered without a file_path")
        check_size(result.get("file_size"), max_bytes)
        base = settings.telegram_api_base.rstrip("/")
        file_url = f"{base}/file/bot{token}/{result['file_path']}"
        return await download(http, file_url, max_bytes=max_bytes, what="telegram file")


# --- the channel's parts ------------------------------------------------------------


def routes(intake: Intake) -> APIRouter:
    """`POST /webhooks/telegram`: one Update per call."""
    router = APIRouter()

    @router.post("/webhooks/telegram")
    async def telegram_update(
        request: Request,
        secret: Annotated[str | None, Header(alias=SECRET_HEADER)] = None,
    ) -> dict[str, int]:
        """One Update from the Telegram Bot API."""
        settings = intake.settings(request)
        if settings.telegram_secret_token is None:
            raise intake.disabled("telegram")
        with intake.rejecting("telegram"):
            verify(secret, settings)
        body = await intake.read_body(request, settings.webhook_max_body_bytes, "telegram")
        tenant = settings.telegram_tenant or intake.default_tenant(request)
        with intake.rejecting("telegram"):
            message = parse_update(body, tenant_id=tenant, settings=settings)
        messages = [message] if message else []
        await intake.accept(request, "telegram", messages)
        return {"enqueued": len(messages)}

    return router


def poll(
    app_settings: Any, settings: ChannelSettings, interval_s: float | None = None
) -> AsyncIterator[InboundMessage]:
    """Updates by long polling `getUpdates` (`clawdesk poll telegram`); a long poll
    paces itself, so there is no interval."""
    if settings.telegram_bot_token is None:
        raise NotConfigured("CLAWDESK_TELEGRAM_BOT_TOKEN is not set")
    return poll_updates(
        tenant_id=settings.telegram_tenant or app_settings.default_tenant,
        settings=settings,
        timeout_s=settings.telegram_poll_timeout_s,
    )


CHANNEL = ChannelModule(
    name="telegram",
    sender=send,
    settings_loader=channel_settings,
    routes=routes,
    media_fetcher=fetch_media,
    poll_source=PollSource(
        open=poll,
        help="Long-poll the Telegram Bot API (getUpdates) and enqueue each text message.",
    ),
    media_sender=send_media,
)
