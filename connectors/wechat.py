"""The WeChat official-account channel (plain-text mode, not the AES "safe mode").

Inbound: WeChat signs every call in the query string,
`signature = sha1("".join(sorted([token, timestamp, nonce])))`; a GET with `echostr`
verifies the URL, a POST carries one XML message. Texts; images, voice notes and videos
(attachments fetched by ingest with `/cgi-bin/media/get`; a voice note's `Recognition`
is its text); `subscribe` (a follow, welcomed), `unsubscribe` (recorded) and menu
`CLICK` events (a choice mapped to an intent, `wechat_menu_intents`) become
InboundMessages.

Outbound, the 5-second rule: WeChat waits 5 s for the POST's answer, which may be the
reply itself ("passive" XML). The webhook waits `wechat_reply_wait_s` for it; `send`
(called by the dispatcher) decides which way a reply goes from its age: a bot reply
composed within `wechat_passive_cutoff_s` of receipt goes to the outbound topic, where
the waiting webhook picks it up; a later one, and every agent reply from the inbox,
goes through the customer-service API (`/cgi-bin/message/custom/send`). The cutoff
sits well below the webhook's wait so a reply is not published for a webhook that has
already answered.

Message shape::

    <xml><ToUserName><![CDATA[gh_123]]></ToUserName>
         <FromUserName><![CDATA[o-openid]]></FromUserName>
         <CreateTime>1700000000</CreateTime><MsgType><![CDATA[text]]></MsgType>
         <Content><![CDATA[hello]]></Content><MsgId>1234567890123456</MsgId></xml>
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
import weakref
from collections.abc import Awaitable, Callable, Sequence
from typing import Annotated, Any
from xml.etree.ElementTree import Element, ParseError, fromstring

import httpx
from fastapi import APIRouter, Query, Request
from fastapi.responses import PlainTextResponse, Response
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from connectors import web
from connectors.base import ChannelModule, Intake
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
from connectors.media import Fetched, MediaGone, OutgoingFile, download
from connectors.signatures import (
    PayloadError,
    SignatureError,
    check_fresh,
    secrets_equal,
    wechat_signature,
)
from schemas import Attachment, Channel, InboundMessage, MessageKind, Reply, utc_now

try:  # defusedxml refuses DTDs, entities and external references outright
    from defusedxml import DefusedXmlException
    from defusedxml.ElementTree import fromstring as _defused_fromstring
except ImportError:  # pragma: no cover - exercised only without defusedxml
    _defused_fromstring = None
    DefusedXmlException = ValueError

log = logging.getLogger(__name__)

META_OPENID = "wechat_openid"
META_ACCOUNT = "wechat_account"
META_EVENT = "wechat_event"
SUCCESS = "success"  # what WeChat expects when there is no passive reply
TOKEN_MARGIN_S = 300.0
# errcodes: the access token is invalid or expired (fetch a new one and retry once)...
_TOKEN_ERRORS = frozenset({40001, 40014, 42001})
# ...and the platform is busy or we are over a frequency limit (retry later).
_BUSY_ERRORS = frozenset({-1, 45009, 45011})

_OpenId = Annotated[str, Field(pattern=r"^[A-Za-z0-9_-]{1,64}$")]


class _Shape(BaseModel):
    model_config = ConfigDict(extra="ignore", frozen=True, populate_by_name=True)


class _Message(_Shape):
    to_user: _OpenId = Field(alias="ToUserName")
    from_user: _OpenId = Field(alias="FromUserName")
    create_time: int = Field(alias="CreateTime", ge=0, lt=10**12)
    msg_type: str = Field(alias="MsgType", max_length=32)
    content: str | None = Field(default=None, alias="Content", max_length=20_000)
    msg_id: str | None = Field(default=None, alias="MsgId", pattern=r"^[0-9]{1,32}$")
    event: str | None = Field(default=None, alias="Event", max_length=64)
    event_key: str | None = Field(default=None, alias="EventKey", max_length=256)
    media_id: str | None = Field(default=None, alias="MediaId", max_length=256)
    voice_format: str | None = Field(default=None, alias="Format", max_length=32)
    recognition: str | None = Field(default=None, alias="Recognition", max_length=20_000)


def verify(
    signature: str | None,
    timestamp: str | None,
    nonce: str | None,
    settings: ChannelSettings,
    *,
    now: float,
) -> None:
    """Check the query-string signature, then that its timestamp is recent (a replay
    of a captured URL fails the second check)."""
    if settings.wechat_token is None:
        raise SignatureError("wechat is not configured")
    if not (signature and timestamp and nonce):
        raise SignatureError("missing signature, timestamp or nonce")
    expected = wechat_signature(settings.wechat_token.get_secret_value(), timestamp, nonce)
    if not secrets_equal(signature.lower(), expected):
        raise SignatureError("bad signature")
    check_fresh(timestamp, now, settings.webhook_max_skew_s)


def parse_xml(body: bytes) -> dict[str, str]:
    """The child elements of a WeChat `<xml>` body as a dict; PayloadError if it is not
    one, or if it declares a DTD or entities."""
    root = _safe_fromstring(body)
    if root.tag != "xml":
        raise PayloadError("the root element is not <xml>")
    fields: dict[str, str] = {}
    for child in root:
        if isinstance(child.tag, str) and len(child) == 0:
            fields.setdefault(child.tag, (child.text or "").strip())
    return fields


def _safe_fromstring(body: bytes) -> Element:
    try:
        text = body.decode("utf-8")
    except UnicodeDecodeError as err:
        raise PayloadError("the body is not UTF-8") from err
    try:
        if _defused_fromstring is not None:
            root: Element = _defused_fromstring(text, forbid_dtd=True)
            return root
        upper = text.upper()
        if "<!DOCTYPE" in upper or "<!ENTITY" in upper:
            raise PayloadError("DTDs and entities are refused")

        return fromstring(text)
    except (ParseError, DefusedXmlException) as err:
        raise PayloadError(f"not well-formed XML: {type(err).__name__}") from err


def parse_message(
    body: bytes, *, tenant_id: str, settings: ChannelSettings | None = None
) -> InboundMessage | None:
    """The InboundMessage of a POSTed XML body; None for a kind we do not read
    (locations, links, menu links, scans...)."""
    return to_event(parse_xml(body), tenant_id=tenant_id, settings=settings)


_MEDIA_KINDS = {"image": "image", "voice": "voice", "video": "video", "shortvideo": "video"}
_DECLARED = {"image": "image/jpeg", "voice": "audio/amr", "video": "video/mp4"}


def to_event(
    raw: dict[str, str], *, tenant_id: str, settings: ChannelSettings | None = None
) -> InboundMessage | None:
    """A parsed message (tag → text) as an InboundMessage, or None."""
    try:
        message = _Message.model_validate(raw)
    except ValidationError as err:
        first = err.errors()[0]
        where = ".".join(str(p) for p in first.get("loc", ()))
        raise PayloadError(f"malformed message: {where}: {first.get('msg', '')}"[:300]) from err
    if message.msg_type == "text":
        if not message.msg_id or not message.content:
            raise PayloadError("a text message needs MsgId and Content")
        return _event(message, tenant_id, message.msg_id, message.content, {})
    if message.msg_type in _MEDIA_KINDS:
        return _media(message, tenant_id)
    if message.msg_type == "event":
        menu = settings.wechat_menu_intents if settings else {}
        return _system_event(message, tenant_id, menu)
    return None


def _media(message: _Message, tenant_id: str) -> InboundMessage:
    """An image, voice note or video; a voice note WeChat transcribed (`Recognition`,
    when speech recognition is on for the account) is read as its text."""
    if not message.msg_id or not message.media_id:
        raise PayloadError(f"a {message.msg_type} message needs MsgId and MediaId")
    kind = _MEDIA_KINDS[message.msg_type]
    declared = _DECLARED[kind]
    if kind == "voice" and message.voice_format:
        declared = f"audio/{message.voice_format.lower()}"
    attachment = Attachment(kind=kind, provider_ref=message.media_id, declared_type=declared)  # type: ignore[arg-type]
    text = (message.recognition or "").strip()
    return _event(
        message,
        tenant_id,
        message.msg_id,
        text,
        {},
        kind=MessageKind.TEXT if text else MessageKind.MEDIA,
        attachments=[attachment],
    )


def _system_event(message: _Message, tenant_id: str, menu: dict[str, str]) -> InboundMessage | None:
    """subscribe → a follow (welcomed), unsubscribe → an unfollow (recorded), a menu
    CLICK → a choice (its EventKey mapped to an intent; an unmapped key is answered
    like a follow, with the welcome and what the bot can do)."""
    event = (message.event or "").lower()
    # Events have no MsgId; WeChat's advice is to dedupe them on sender + time.
    message_id = f"{message.from_user}:{message.create_time}:{event}"
    meta = {META_EVENT: event}
    if event == "subscribe":
        return _event(message, tenant_id, message_id, "", meta, kind=MessageKind.FOLLOW)
    if event == "unsubscribe":
        return _event(message, tenant_id, message_id, "", meta, kind=MessageKind.UNFOLLOW)
    if event == "click":
        key = (message.event_key or "").strip()
        if not key:
            raise PayloadError("a CLICK event needs an EventKey")
        intent = intent_of(key, menu)
        if intent is None:
            log.info("unmapped wechat menu key", extra={"event_key": key[:64]})
            return _event(
                message, tenant_id, message_id, "", meta, kind=MessageKind.COMMAND, command="help"
            )
        return _event(
            message,
            tenant_id,
            f"{message_id}:{key}"[:200],
            text_of(key, intent),
            meta,
            kind=MessageKind.CHOICE,
            choice=key,
            intent=intent,
        )
    return None


def conversation_id(account: str, openid: str) -> str:
    """One conversation per official account and follower."""
    return f"wechat:{account}:{openid}"


def _event(
    message: _Message,
    tenant_id: str,
    message_id: str,
    text: str,
    extra: dict[str, str],
    **fields: Any,
) -> InboundMessage:
    return InboundMessage(
        conversation_id=conversation_id(message.to_user, message.from_user),
        tenant_id=tenant_id,
        channel=Channel.WECHAT,
        channel_message_id=message_id,
        customer_id=message.from_user,
        text=text,
        metadata={META_OPENID: message.from_user, META_ACCOUNT: message.to_user, **extra},
        **fields,
    )


def _cdata(text: str) -> str:
    # "]]>" would end the section early; split it across two sections.
    return "<![CDATA[" + text.replace("]]>", "]]]]><![CDATA[>") + "]]>"


def render_passive_reply(reply: Reply, *, now: float | None = None) -> str:
    """The XML answering the webhook POST with the reply itself."""
    to_user = reply.metadata.get(META_OPENID) or reply.customer_id
    from_user = reply.metadata.get(META_ACCOUNT, "")
    created = int(time.time() if now is None else now)
    return (
        f"<xml><ToUserName>{_cdata(to_user)}</ToUserName>"
        f"<FromUserName>{_cdata(from_user)}</FromUserName>"
        f"<CreateTime>{created}</CreateTime><MsgType><![CDATA[text]]></MsgType>"
        f"<Content>{_cdata(reply.text)}</Content></xml>"
    )


class AccessTokens:
    """The access token per appid, cached until `expires_in` minus a margin.

    WeChat issues one valid token at a time per appid (a new fetch retires the old
    one within minutes), so every process sharing an appid should share this cache's
    role; `invalidate` drops a token the API called invalid.
    """

    def __init__(self, margin_s: float = TOKEN_MARGIN_S) -> None:
        self.margin_s = margin_s
        self._tokens: dict[str, tuple[str, float]] = {}
        # One lock per event loop: an asyncio.Lock binds to the loop that first waits on
        # it, and this cache is module-wide (a test run or a CLI starts several loops).
        self._locks: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, asyncio.Lock] = (
            weakref.WeakKeyDictionary()
        )

    async def get(self, http: httpx.AsyncClient, settings: ChannelSettings) -> str:
        """A valid token, fetched only when none is cached or it is about to expire."""
        lock = self._locks.setdefault(asyncio.get_running_loop(), asyncio.Lock())
        async with lock:  # one fetch at a time: a second would retire the first
            cached = self._tokens.get(settings.wechat_appid)
            if cached and cached[1] > time.monotonic():
                return cached[0]
            token, expires_in = await _fetch_token(http, settings)
            lifetime = max(expires_in - self.margin_s, expires_in / 2)
            self._tokens[settings.wechat_appid] = (token, time.monotonic() + lifetime)
            return token

    def invalidate(self, appid: str) -> None:
        """Forget the cached token of an appid."""
        self._tokens.pop(appid, None)


TOKENS = AccessTokens()


async def _fetch_token(http: httpx.AsyncClient, settings: ChannelSettings) -> tuple[str, float]:
    params = {
        "grant_type": "client_credential",
        "appid": settings.wechat_appid,
        "secret": require(settings.wechat_secret, "wechat_secret"),
    }
    url = f"{settings.wechat_api_base.rstrip('/')}/cgi-bin/token"
    async for attempt in send_retrying(settings):
        with attempt:
            with transport_errors("wechat token"):
                response = await http.get(url, params=params)
            payload = _payload(response, "token")
    token = payload.get("access_token")
    if not isinstance(token, str) or not token:
        raise DeliveryError(f"wechat token: {_describe(payload)}")
    expires_in = payload.get("expires_in", 7200)
    return token, float(expires_in) if isinstance(expires_in, int | float) else 7200.0


def _payload(response: httpx.Response, what: str) -> dict[str, Any]:
    raise_for_retry(response, f"wechat {what}")
    try:
        payload = response.json()
    except ValueError:
        payload = None
    if not isinstance(payload, dict):
        raise DeliveryError(f"wechat {what}: HTTP {response.status_code}, not JSON")
    if payload.get("errcode") in _BUSY_ERRORS:
        raise ProviderUnavailable(f"wechat {what}: {_describe(payload)}")
    return payload


def _describe(payload: dict[str, Any]) -> str:
    return f"errcode {payload.get('errcode')}: {str(payload.get('errmsg', ''))[:200]}"


Publish = Callable[[Reply], Awaitable[str]]


async def send(
    reply: Reply,
    *,
    settings: ChannelSettings | None = None,
    client: httpx.AsyncClient | None = None,
    tokens: AccessTokens | None = None,
    publish: Publish | None = None,
) -> str:
    """Deliver a reply: passively through the waiting webhook if it is the bot's answer
    and fresh enough (published to the outbound topic by `publish`), else by the
    customer-service API."""
    settings = settings or channel_settings()
    if _webhook_may_wait(reply, settings):
        if publish is None:
            publish = web.send
        return await publish(reply)
    return await send_custom(reply, settings=settings, client=client, tokens=tokens)


def _webhook_may_wait(reply: Reply, settings: ChannelSettings) -> bool:
    """Whether the webhook that carried the customer's message may still be waiting.

    Only the bot answers the message a webhook holds open. An agent's reply from the
    inbox is stamped with the time the agent sent it, so it always looks fresh; published
    for a webhook that answered long ago, it would reach no one while being recorded sent.
    """
    if reply.author != "bot":
        return False
    age_s = (utc_now() - reply.received_at).total_seconds()
    return age_s < settings.wechat_passive_cutoff_s


async def send_custom(
    reply: Reply,
    *,
    settings: ChannelSettings | None = None,
    client: httpx.AsyncClient | None = None,
    tokens: AccessTokens | None = None,
) -> str:
    """Send through `/cgi-bin/message/custom/send` (the 48-hour customer-service
    window); WeChat returns no message id, so the reply id stands for it."""
    settings = settings or channel_settings()
    tokens = tokens or TOKENS
    body = json.dumps(
        {
            "touser": reply.metadata.get(META_OPENID) or reply.customer_id,
            "msgtype": "text",
            "text": {"content": reply.text},
        },
        ensure_ascii=False,  # WeChat shows \u escapes literally in some clients
    ).encode()
    url = f"{settings.wechat_api_base.rstrip('/')}/cgi-bin/message/custom/send"
    async with using_client(settings, client) as http:
        for _ in range(2):  # the second try is with a freshly fetched token
            token = await tokens.get(http, settings)
            payload = await _post_custom(http, url, token, body, settings)
            if payload.get("errcode", 0) == 0:
                return reply.reply_id
            if payload.get("errcode") not in _TOKEN_ERRORS:
                break
            tokens.invalidate(settings.wechat_appid)
    raise DeliveryError(f"wechat custom send: {_describe(payload)}")


async def send_media(
    reply: Reply,
    files: Sequence[OutgoingFile],
    *,
    settings: ChannelSettings | None = None,
    client: httpx.AsyncClient | None = None,
    tokens: AccessTokens | None = None,
) -> str:
    """Send images through the customer-service API: each is uploaded as temporary
    media (`/cgi-bin/media/upload?type=image`, multipart field `media`) and sent as an
    `image` message by the media id WeChat gives; the text goes first, as a text
    message (an image message has no caption). The reply id stands for the message id."""
    settings = settings or channel_settings()
    tokens = tokens or TOKENS
    base = settings.wechat_api_base.rstrip("/")
    async with using_client(settings, client) as http:
        if reply.text:
            await send_custom(reply, settings=settings, client=http, tokens=tokens)
        for file in files:
            media_id = await _upload_media(
                http, f"{base}/cgi-bin/media/upload", file, settings, tokens
            )
            body = json.dumps(
                {
                    "touser": reply.metadata.get(META_OPENID) or reply.customer_id,
                    "msgtype": "image",
                    "image": {"media_id": media_id},
                }
            ).encode()
            await _custom_with_token(
                http, f"{base}/cgi-bin/message/custom/send", body, settings, tokens
            )
    return reply.reply_id


async def _custom_with_token(
    http: httpx.AsyncClient,
    url: str,
    body: bytes,
    settings: ChannelSettings,
    tokens: AccessTokens,
) -> None:
    for _ in range(2):  # the second try is with a freshly fetched token
        token = await tokens.get(http, settings)
        payload = await _post_custom(http, url, token, body, settings)
        if payload.get("errcode", 0) == 0:
            return
        if payload.get("errcode") not in _TOKEN_ERRORS:
            break
        tokens.invalidate(settings.wechat_appid)
    raise DeliveryError(f"wechat custom send: {_describe(payload)}")


async def _upload_media(
    http: httpx.AsyncClient,
    url: str,
    file: OutgoingFile,
    settings: ChannelSettings,
    tokens: AccessTokens,
) -> str:
    """Upload temporary media (kept 3 days by WeChat); its media_id."""
    for _ in range(2):  # the second try is with a freshly fetched token
        token = await tokens.get(http, settings)
        async for attempt in send_retrying(settings):
            with attempt:
                with transport_errors("wechat media upload"):
                    response = await http.post(
                        url,
                        params={"access_token": token, "type": "image"},
                        files={
                            "media": (file.filename or "image.jpg", file.data, file.content_type)
                        },
                    )
                payload = _payload(response, "media upload")
        media_id = payload.get("media_id")
        if isinstance(media_id, str) and media_id:
            return media_id
        if payload.get("errcode") not in _TOKEN_ERRORS:
            break
        tokens.invalidate(settings.wechat_appid)
    raise DeliveryError(f"wechat media upload: {_describe(payload)}")


async def _post_custom(
    http: httpx.AsyncClient, url: str, token: str, body: bytes, settings: ChannelSettings
) -> dict[str, Any]:
    headers = {"Content-Type": "application/json; charset=utf-8"}
    async for attempt in send_retrying(settings):
        with attempt:
            with transport_errors("wechat custom send"):
                response = await http.post(
                    url, params={"access_token": token}, content=body, headers=headers
                )
            return _payload(response, "custom send")
    raise AssertionError("unreachable: the retry loop returns or raises")


async def fetch_media(
    attachment: Attachment,
    *,
    max_bytes: int,
    settings: ChannelSettings | None = None,
    client: httpx.AsyncClient | None = None,
    tokens: AccessTokens | None = None,
) -> Fetched:
    """A file the follower sent, by `/cgi-bin/media/get` (temporary media, kept 3 days).
    WeChat answers the bytes, or JSON: an error, or for a video its `video_url`."""
    settings = settings or channel_settings()
    tokens = tokens or TOKENS
    url = f"{settings.wechat_api_base.rstrip('/')}/cgi-bin/media/get"
    async with using_client(settings, client) as http:
        for _ in range(2):  # the second try is with a freshly fetched token
            token = await tokens.get(http, settings)
            params = {"access_token": token, "media_id": attachment.provider_ref}
            fetched = await download(
                http, url, max_bytes=max_bytes, what="wechat media", params=params
            )
            payload = _json_answer(fetched)
            if payload is None:
                return fetched
            video_url = payload.get("video_url")
            if isinstance(video_url, str) and video_url.startswith(("https://", "http://")):
                return await download(http, video_url, max_bytes=max_bytes, what="wechat video")
            code = payload.get("errcode")
            if code in _TOKEN_ERRORS:
                tokens.invalidate(settings.wechat_appid)
                continue
            if code in _BUSY_ERRORS:
                raise ProviderUnavailable(f"wechat media: {_describe(payload)}")
            raise MediaGone(f"wechat media: {_describe(payload)}")
    raise DeliveryError("wechat media: the access token was refused twice")


def _json_answer(fetched: Fetched) -> dict[str, Any] | None:
    """The JSON object WeChat answered instead of a file, if it did."""
    if not fetched.data.lstrip()[:1] == b"{" or len(fetched.data) > 64 * 1024:
        return None
    try:
        payload = json.loads(fetched.data)
    except ValueError:
        return None
    return payload if isinstance(payload, dict) else None


# --- the channel's parts ------------------------------------------------------------


def routes(intake: Intake) -> APIRouter:
    """`GET /webhooks/wechat` (URL check) and `POST` (one message, answered passively
    when its reply comes within `wechat_reply_wait_s`)."""
    router = APIRouter()

    @router.get("/webhooks/wechat", response_class=PlainTextResponse)
    async def wechat_verify_url(
        request: Request,
        signature: str | None = None,
        timestamp: str | None = None,
        nonce: str | None = None,
        echostr: Annotated[str | None, Query(max_length=200)] = None,
    ) -> Response:
        """WeChat's check of the server URL: echo `echostr` when the signature holds."""
        settings = intake.settings(request)
        if settings.wechat_token is None:
            raise intake.disabled("wechat")
        with intake.rejecting("wechat"):
            verify(signature, timestamp, nonce, settings, now=time.time())
        if not echostr:
            raise intake.error(400, "missing echostr")
        return PlainTextResponse(echostr)

    @router.post("/webhooks/wechat", response_class=PlainTextResponse)
    async def wechat_message(
        request: Request,
        signature: str | None = None,
        timestamp: str | None = None,
        nonce: str | None = None,
    ) -> Response:
        """One message; answered with the reply itself if it comes within the wait."""
        started = time.monotonic()
        settings = intake.settings(request)
        if settings.wechat_token is None:
            raise intake.disabled("wechat")
        with intake.rejecting("wechat"):
            verify(signature, timestamp, nonce, settings, now=time.time())
        body = await intake.read_body(request, settings.webhook_max_body_bytes, "wechat")
        tenant = settings.wechat_tenant or intake.default_tenant(request)
        with intake.rejecting("wechat"):
            message = parse_message(body, tenant_id=tenant, settings=settings)
        if message is None:
            intake.count("wechat", "ignored")
            return PlainTextResponse(SUCCESS)
        await intake.require_tenants(request, {message.tenant_id}, "wechat")
        if message.kind is MessageKind.UNFOLLOW:  # recorded, never answered: no wait
            await intake.accept(request, "wechat", [message])
            return PlainTextResponse(SUCCESS)
        remaining = settings.wechat_reply_wait_s - (time.monotonic() - started)
        reply = await intake.accept_and_await(request, "wechat", message, remaining)
        if reply is None:
            # Too late to answer passively: the dispatcher sends it by the custom API.
            return PlainTextResponse(SUCCESS)
        return Response(render_passive_reply(reply), media_type="application/xml")

    return router


CHANNEL = ChannelModule(
    name="wechat",
    sender=send,
    settings_loader=channel_settings,
    routes=routes,
    media_fetcher=fetch_media,
    media_sender=send_media,
)
