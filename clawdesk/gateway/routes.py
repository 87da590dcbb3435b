"""The gateway's routes: web chat API, reply WebSocket, page, health, readiness, metrics."""

from __future__ import annotations

import asyncio
import html
import logging
import re
from collections.abc import Awaitable, Callable, Sequence
from functools import partial
from pathlib import Path
from typing import Annotated

import anyio
import psycopg
from fastapi import APIRouter, Depends, Header, Request, WebSocket, WebSocketDisconnect
from fastapi import Path as PathParam
from fastapi.responses import HTMLResponse, JSONResponse, Response
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from starlette.requests import HTTPConnection

from clawdesk.gateway import intake
from clawdesk.gateway.fanout import Inbox
from clawdesk.gateway.health import OPTIONAL_CHECKS, readiness
from clawdesk.gateway.limits import LimitExceeded, rate_limiter_of
from clawdesk.gateway.metrics import ENQUEUE_SECONDS, MESSAGES, REPLIES, WEBSOCKETS
from clawdesk.gateway.models import (
    CONVERSATION_ID_PATTERN,
    Accepted,
    Feedback,
    FeedbackIn,
    HistoryItem,
    ReplyPush,
    WebConversation,
    WebConversationIn,
    WebImage,
    WebMessageIn,
)
from clawdesk.gateway.replay import replies_after
from clawdesk.gateway.state import GatewayState, gateway_state
from clawdesk.gateway.tokens import (
    ConversationTokens,
    Owner,
    bearer,
    conversation_tokens,
    new_conversation_id,
)
from clawdesk.settings import ChannelSettings, channel_settings, connection_settings
from clawdesk.storage import attachments
from clawdesk.storage.db import fetch_history, tenant_exists
from clawdesk.storage.feedback import record_feedback
from clawdesk.tenants import tenant_profile
from connectors.deliveries import Delivery, conversation_deliveries
from schemas import Channel, InboundMessage, Reply

log = logging.getLogger(__name__)

WEB_DIR = Path(__file__).resolve().parent.parent / "web"
# The page loads only its own script and talks only to this origin (no CDN at run time).
PAGE_CSP = (
    "default-src 'self'; script-src 'self'; style-src 'self' 'unsafe-inline'; "
    "connect-src 'self' ws: wss:; img-src 'self' data: blob:; frame-ancestors 'self'"
)
_CONVERSATION_ID = re.compile(CONVERSATION_ID_PATTERN)

State = Annotated[GatewayState, Depends(gateway_state)]
Tokens = Annotated[ConversationTokens, Depends(conversation_tokens)]
ConversationId = Annotated[str, PathParam(pattern=CONVERSATION_ID_PATTERN)]
ReplyId = Annotated[str, PathParam(pattern=r"^[A-Za-z0-9_.:-]{1,200}$")]

router = APIRouter()


class GatewayError(Exception):
    """An expected failure answered as `{"error": message}` with `status` (plus a machine
    `code` and `extra` fields, and response `headers`, where the caller gives them)."""

    def __init__(
        self,
        status: int,
        message: str,
        *,
        code: str | None = None,
        extra: dict[str, object] | None = None,
        headers: dict[str, str] | None = None,
    ) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.code = code
        self.extra = extra or {}
        self.headers = headers

    def body(self) -> dict[str, object]:
        """The JSON answer."""
        body: dict[str, object] = {"error": self.message, **self.extra}
        if self.code:
            body["code"] = self.code
        return body


class TokenRequired(GatewayError):
    """401 for a conversation asked for without its token, with the challenge to send one."""

    def __init__(self, message: str) -> None:
        super().__init__(401, message, headers={"WWW-Authenticate": 'Bearer realm="clawdesk web"'})


def limited_error(refused: LimitExceeded) -> GatewayError:
    """The 429 for a refused message: Retry-After, and a body saying which limit."""
    return GatewayError(
        429,
        f"too many messages from this {refused.scope}; retry in {refused.retry_after_s} s",
        code="rate_limited",
        extra={
            "scope": refused.scope,
            "limit": refused.limit,
            "retry_after_s": refused.retry_after_s,
        },
        headers={"Retry-After": str(refused.retry_after_s)},
    )


async def check_rate(request: Request, messages: Sequence[InboundMessage]) -> None:
    """429 (and nothing enqueued) when a message is over its customer's or tenant's limit."""
    channels = channel_settings_of(request)
    limiter = rate_limiter_of(request.app, channels, connection_settings().redis_url)
    if limiter is None or not messages:
        return
    refused = await limiter.check(messages)
    if refused is not None:
        raise limited_error(refused)


def channel_settings_of(request: Request) -> ChannelSettings:
    """The app's channel settings (`app.state.channel_settings`, tests), else the
    environment's."""
    configured = getattr(request.app.state, "channel_settings", None)
    return configured if isinstance(configured, ChannelSettings) else channel_settings()


def to_inbound(body: WebMessageIn, owner: Owner) -> InboundMessage:
    """The inbound event for a web message posted to the owner's conversation."""
    conversation_id = owner.conversation_id
    return InboundMessage(
        conversation_id=conversation_id,
        tenant_id=owner.tenant_id,
        channel=Channel.WEB,
        channel_message_id=body.client_message_id,
        # An anonymous web visitor is known only by their conversation.
        customer_id=body.customer_id or conversation_id,
        text=body.text,
    )


@router.post("/api/web/conversations", status_code=201)
async def post_web_conversation(
    state: State, tokens: Tokens, body: WebConversationIn | None = None
) -> WebConversation:
    """Start a web conversation: its id and the token that opens it. The widget opens
    the reply socket with them before the first message, so no reply can come before
    the socket."""
    tenant_id = (body.tenant_id if body else None) or state.settings.default_tenant
    if not await known_tenant(state, tenant_id):
        raise GatewayError(404, "unknown tenant")
    conversation_id = new_conversation_id()
    return WebConversation(
        conversation_id=conversation_id, token=tokens.issue(tenant_id, conversation_id)
    )


def message_owner(
    body: WebMessageIn, default_tenant: str, tokens: ConversationTokens, token: str | None
) -> Owner:
    """Whose conversation a posted message goes to: a new one for a message naming
    none, else the one its token opens (401 without a token, 403 with another's)."""
    if body.conversation_id is None:
        return Owner(body.tenant_id or default_tenant, new_conversation_id())
    if token is None:
        raise TokenRequired("a message to a conversation needs its token")
    owner = tokens.verify(token, body.conversation_id)
    if owner is None or (body.tenant_id and body.tenant_id != owner.tenant_id):
        raise GatewayError(403, "the token does not open this conversation")
    return owner


@router.post("/api/web/messages", status_code=202)
async def post_web_message(
    body: WebMessageIn,
    state: State,
    request: Request,
    tokens: Tokens,
    authorization: Annotated[str | None, Header()] = None,
) -> Accepted:
    """Enqueue a customer's message on the inbound topic; answer once the broker has it."""
    try:
        owner = message_owner(body, state.settings.default_tenant, tokens, bearer(authorization))
    except GatewayError:
        MESSAGES.labels(outcome="forbidden").inc()
        raise
    tenant_id = owner.tenant_id
    if not await known_tenant(state, tenant_id):
        MESSAGES.labels(outcome="unknown_tenant").inc()
        raise GatewayError(404, "unknown tenant")
    msg = to_inbound(body, owner)
    try:
        await check_rate(request, [msg])
    except GatewayError:
        MESSAGES.labels(outcome="rate_limited").inc()
        raise
    try:
        with ENQUEUE_SECONDS.time():
            await admit_or_refuse(state, [msg])
    except GatewayError as err:
        MESSAGES.labels(outcome="overloaded" if err.code == "overloaded" else "unavailable").inc()
        raise
    MESSAGES.labels(outcome="enqueued").inc()
    log.info(
        "message enqueued",
        extra={
            "event_id": msg.event_id,
            "conversation_id": msg.conversation_id,
            "tenant_id": tenant_id,
        },
    )
    return Accepted(
        conversation_id=msg.conversation_id,
        event_id=msg.event_id,
        token=tokens.issue(tenant_id, msg.conversation_id),
    )


async def admit_or_refuse(state: GatewayState, messages: Sequence[InboundMessage]) -> None:
    """`intake.admit`, its refusals as the HTTP answers clients and providers retry on:
    503 with Retry-After when overloaded, 503 when Postgres is down (nothing taken)."""
    try:
        await intake.admit(state, messages)
    except intake.Overloaded as err:
        raise GatewayError(
            503,
            f"too busy: {err}; retry in {err.retry_after_s} s",
            code="overloaded",
            extra={"retry_after_s": err.retry_after_s},
            headers={"Retry-After": str(err.retry_after_s)},
        ) from err
    except intake.Unavailable as err:
        # Safe to retry: the pipeline dedupes on the client's / provider's message id.
        raise GatewayError(503, "database unavailable; retry") from err


async def known_tenant(state: GatewayState, tenant_id: str) -> bool:
    """Whether the tenant exists (503 when Postgres does not answer)."""
    try:
        async with asyncio.timeout(state.settings.stage_timeout_s):
            return await tenant_exists(state.pool, tenant_id)
    except (psycopg.Error, TimeoutError) as err:
        MESSAGES.labels(outcome="unavailable").inc()
        log.warning("tenant lookup failed", extra={"error": repr(err)})
        raise GatewayError(503, "database unavailable") from err


def visitor(
    conversation_id: ConversationId,
    tokens: Tokens,
    authorization: Annotated[str | None, Header()] = None,
) -> Owner:
    """FastAPI dependency: the owner whose token (`Authorization: Bearer`) opens the
    path's conversation (401 without a token, 403 with one that does not open it)."""
    token = bearer(authorization)
    if token is None:
        raise TokenRequired("this conversation needs its token (Authorization: Bearer <token>)")
    owner = tokens.verify(token, conversation_id)
    if owner is None:
        raise GatewayError(403, "the token does not open this conversation")
    return owner


Visitor = Annotated[Owner, Depends(visitor)]


@router.get("/api/web/conversations/{conversation_id}/messages")
async def get_history(
    conversation_id: ConversationId, state: State, request: Request, _owner: Visitor
) -> list[HistoryItem]:
    """The conversation's stored messages, oldest first (only with its token)."""
    try:
        async with asyncio.timeout(state.settings.stage_timeout_s):
            stored = await fetch_history(state.pool, conversation_id)
            images = await conversation_images(state, request, conversation_id)
    except (psycopg.Error, TimeoutError) as err:
        log.warning("history lookup failed", extra={"error": repr(err)})
        raise GatewayError(503, "database unavailable") from err
    return [HistoryItem.of(m, images.get(m.id)) for m in stored]


async def conversation_images(
    state: GatewayState, conn: HTTPConnection, conversation_id: str
) -> dict[str, list[WebImage]]:
    """The conversation's stored images by message id, each as a short-lived link."""
    files = await attachments.of_conversation(state.pool, conversation_id)
    secret = conversation_tokens(conn).secret
    ttl = state.settings.attachment_url_ttl_s
    found: dict[str, list[WebImage]] = {}
    for f in files:
        if f.object_key and (f.content_type or "").startswith("image/"):
            url = attachments.signed_path(secret, f.id, ttl)
            found.setdefault(f.message_id, []).append(
                WebImage(url=url, content_type=f.content_type)
            )
    return found


def reply_images(state: GatewayState, conn: HTTPConnection, reply: Reply) -> list[WebImage]:
    """Links to a reply's stored images (an agent's), for the push."""
    secret = conversation_tokens(conn).secret
    ttl = state.settings.attachment_url_ttl_s
    return [
        WebImage(
            url=attachments.signed_path(secret, a.attachment_id, ttl), content_type=a.content_type
        )
        for a in reply.attachments
        if a.attachment_id and a.object_key
    ]


@router.get("/api/web/conversations/{conversation_id}/deliveries")
async def get_deliveries(
    conversation_id: ConversationId, state: State, _owner: Visitor
) -> list[Delivery]:
    """Each reply of the conversation with the delivery status its channel reported
    (only with its token)."""
    return await list_deliveries(state, conversation_id)


@router.get("/api/web/conversations/{conversation_id}/deliveries/{reply_id}")
async def get_delivery(
    conversation_id: ConversationId, reply_id: ReplyId, state: State, _owner: Visitor
) -> Delivery:
    """One reply's delivery status and its timeline (only with the conversation's token;
    404 if the conversation has no such reply)."""
    found = await list_deliveries(state, conversation_id, reply_id)
    if not found:
        raise GatewayError(404, "unknown reply")
    return found[0]


@router.post("/api/web/conversations/{conversation_id}/replies/{reply_id}/feedback")
async def post_feedback(
    conversation_id: ConversationId,
    reply_id: ReplyId,
    body: FeedbackIn,
    state: State,
    owner: Visitor,
) -> Feedback:
    """Store whether a bot reply helped (only with the conversation's token; 404 if the
    conversation has no such bot reply). A second vote replaces the first."""
    try:
        async with asyncio.timeout(state.settings.stage_timeout_s):
            found = await record_feedback(
                state.pool, owner.tenant_id, conversation_id, reply_id, body.helpful
            )
    except (psycopg.Error, TimeoutError) as err:
        log.warning("feedback not stored", extra={"error": repr(err)})
        raise GatewayError(503, "database unavailable") from err
    if not found:
        raise GatewayError(404, "unknown reply")
    return Feedback(reply_id=reply_id, helpful=body.helpful)


async def list_deliveries(
    state: GatewayState, conversation_id: str, reply_id: str | None = None
) -> list[Delivery]:
    """The conversation's deliveries from Postgres (503 if it does not answer)."""
    try:
        async with asyncio.timeout(state.settings.stage_timeout_s):
            return await conversation_deliveries(state.pool, conversation_id, reply_id)
    except (psycopg.Error, TimeoutError) as err:
        log.warning("delivery lookup failed", extra={"error": repr(err)})
        raise GatewayError(503, "database unavailable") from err


@router.websocket("/ws/{conversation_id}")
async def reply_socket(websocket: WebSocket, conversation_id: str) -> None:
    """Push the conversation's replies to the client as they come off the outbound topic.

    The conversation's token comes as `?token=` (browsers cannot set headers on a
    WebSocket) or `Authorization: Bearer`; without a valid one the socket is accepted
    and closed at once with 1008, so a browser sees that code and can start afresh.
    """
    if not _CONVERSATION_ID.fullmatch(conversation_id):
        await websocket.close(code=1008)
        return
    token = websocket.query_params.get("token") or bearer(websocket.headers.get("authorization"))
    if conversation_tokens(websocket).verify(token, conversation_id) is None:
        await websocket.accept()
        await websocket.close(code=1008, reason="this conversation needs its token")
        return
    state = gateway_state(websocket)
    after = websocket.query_params.get("after")
    # Subscribe before accepting (and before replaying): a reply published meanwhile is
    # in the inbox, so none falls between the replay and the live ones.
    with state.hub.subscribe(conversation_id) as inbox, WEBSOCKETS.track_inprogress():
        await websocket.accept()
        if after and not await _replay(websocket, state, conversation_id, after):
            return
        await _serve_socket(websocket, inbox, partial(reply_images, state, websocket))


async def _replay(
    websocket: WebSocket, state: GatewayState, conversation_id: str, after: str
) -> bool:
    """Push what the client missed since message `after`; False if the socket is done."""
    try:
        async with asyncio.timeout(state.settings.stage_timeout_s):
            missed = await replies_after(state.pool, conversation_id, after[:200])
            images = await conversation_images(state, websocket, conversation_id)
    except (psycopg.Error, TimeoutError) as err:
        log.warning("replay lookup failed", extra={"error": repr(err)})
        missed = None  # the client re-reads the history once the database is back
    try:
        if missed is None:
            REPLIES.labels(outcome="resync").inc()
            await websocket.send_text('{"type": "resync"}')
            return True
        for message in missed:
            push = ReplyPush(
                reply_id=message.id,
                text=message.text,
                sources=[],
                handoff=False,
                author="agent" if message.author == "agent" else "bot",
                images=images.get(message.id, []),
            )
            await websocket.send_text(push.model_dump_json())
            REPLIES.labels(outcome="replayed").inc()
    except (WebSocketDisconnect, RuntimeError, OSError) as err:
        log.info("websocket replay failed", extra={"error": repr(err)})
        return False
    return True


async def _serve_socket(
    websocket: WebSocket, inbox: Inbox, images: Callable[[Reply], list[WebImage]]
) -> None:
    # Whichever ends first (the client leaves, or the inbox asks for a resync) ends both.
    # An anyio task group, not bare asyncio tasks, so a cancelled handler (shutdown)
    # cancels both cleanly under Starlette's own anyio cancel scopes.
    async with anyio.create_task_group() as tasks:

        async def run(job: Callable[[], Awaitable[None]]) -> None:
            await job()
            tasks.cancel_scope.cancel()

        tasks.start_soon(run, partial(_push_replies, websocket, inbox, images))
        tasks.start_soon(run, partial(_until_client_leaves, websocket))


async def _push_replies(
    websocket: WebSocket, inbox: Inbox, images: Callable[[Reply], list[WebImage]]
) -> None:
    try:
        while (reply := await inbox.get()) is not None:
            await websocket.send_text(ReplyPush.of(reply, images(reply)).model_dump_json())
        # The client fell behind: closing makes it reconnect and re-read the history.
        await websocket.close(code=1013)
    except (WebSocketDisconnect, RuntimeError, OSError) as err:
        # The client went away mid-send; it resyncs from history when it comes back.
        log.info("websocket send failed", extra={"error": repr(err)})


async def _until_client_leaves(websocket: WebSocket) -> None:
    # Client messages (keep-alives) carry nothing; only the disconnect matters.
    while (await websocket.receive())["type"] != "websocket.disconnect":
        pass


def page(name: str, values: dict[str, str]) -> HTMLResponse:
    """A page of `WEB_DIR` with its `{{key}}` marks replaced by the (escaped) values:
    the tenant's names come from its profile, not from the page."""
    text = (WEB_DIR / name).read_text(encoding="utf-8")
    for key, value in values.items():
        text = text.replace("{{" + key + "}}", html.escape(value))
    return HTMLResponse(
        text, headers={"Content-Security-Policy": PAGE_CSP, "Cache-Control": "no-cache"}
    )


@router.get("/", include_in_schema=False)
async def index(state: State, tenant: str | None = None) -> HTMLResponse:
    """The web chat page, titled for the tenant (`?tenant=`, else the default)."""
    profile = tenant_profile(tenant or state.settings.default_tenant)
    return page("index.html", {"title": profile.title_in("en")})


@router.get("/api/web/profile")
async def web_profile(state: State, tenant: str | None = None) -> dict[str, object]:
    """The tenant's profile as the chat page shows it: title, assistant and welcome
    per language (`?tenant=`, else the default tenant; neutral for an unknown one)."""
    return tenant_profile(tenant or state.settings.default_tenant).page()


@router.get("/health")
async def health() -> dict[str, str]:
    """Liveness: the process answers."""
    return {"status": "ok"}


@router.get("/ready")
async def ready(state: State) -> JSONResponse:
    """Readiness: 200 when broker and Postgres answer (naming any optional part that is
    down, e.g. Redis), else 503 naming what failed."""
    checks = await readiness(state)
    down = sorted(name for name, status in checks.items() if status != "ok")
    failed = [name for name in down if name not in OPTIONAL_CHECKS]
    if failed:
        return JSONResponse(
            {"status": "unavailable", "failed": failed, "checks": checks}, status_code=503
        )
    # Up, but with a part down that it can do without (e.g. Redis: limits fail open).
    status = "degraded" if down else "ok"
    return JSONResponse({"status": status, "degraded": down, "checks": checks})


@router.get("/metrics", include_in_schema=False)
async def metrics() -> Response:
    """Prometheus exposition of the process's metrics."""
    return Response(generate_latest(), media_type=CONTENT_TYPE_LATEST)
