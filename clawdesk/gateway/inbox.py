"""The agent inbox: a page (`/inbox`) and its JSON API (`/api/inbox/*`).

A human agent signs in with a tenant API key (`Authorization: Bearer cdk_…`) and sees
that tenant's conversations a human owns. A reply is stored as an agent message and
published as a Reply on the replies topic, so the dispatch stage sends it through the
customer's channel once (deduplicated by reply id) like any bot reply, and as an
`agent_reply` control event, so the bot's memory holds the agent's turns after a
hand-back. A hand-back is a control event the worker owning the conversation applies
(memory flag, status).
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import datetime
from typing import Annotated

import psycopg
from aiokafka.errors import KafkaError
from fastapi import APIRouter, Depends, File, Form, Header, Query, Request, UploadFile
from fastapi import Path as PathParam
from fastapi.responses import HTMLResponse, Response
from pydantic import BaseModel, Field

from clawdesk.gateway.models import CONVERSATION_ID_PATTERN, MAX_TEXT_CHARS, SendableText
from clawdesk.gateway.routes import GatewayError, channel_settings_of, page
from clawdesk.gateway.state import GatewayState, gateway_state
from clawdesk.gateway.tokens import conversation_tokens
from clawdesk.gateway.uploads import image_attachment, read_image
from clawdesk.handoff import inbox
from clawdesk.storage import apikeys, attachments, uploads
from clawdesk.storage.apikeys import TenantKey
from clawdesk.tenants import tenant_profile
from connectors import registry
from connectors.config import ChannelSettings
from schemas import Reply
from topics import control_spec, reply_spec

log = logging.getLogger(__name__)

router = APIRouter()
State = Annotated[GatewayState, Depends(gateway_state)]
ConversationId = Annotated[str, PathParam(pattern=CONVERSATION_ID_PATTERN)]


class Unauthorized(GatewayError):
    """401 with the challenge a client needs to know how to sign in."""

    def __init__(self, message: str) -> None:
        super().__init__(401, message)
        self.headers = {"WWW-Authenticate": 'Bearer realm="clawdesk inbox"'}


# ---- response and request shapes ----------------------------------------------------


class TicketOut(BaseModel):
    """The ticket of the conversation's latest handoff."""

    status: str
    reason: str
    handed_off_at: datetime
    attempts: int
    next_attempt_at: datetime
    ticket_id: str | None
    ticket_url: str | None
    last_error: str


class LastMessageOut(BaseModel):
    """The newest message of a conversation."""

    author: str
    text: str
    timestamp: datetime


class ConversationOut(BaseModel):
    """A conversation in the inbox list."""

    id: str
    channel: str
    customer_id: str
    language: str | None
    status: str
    updated_at: datetime
    last_message: LastMessageOut | None
    ticket: TicketOut | None

    @classmethod
    def of(cls, conversation: inbox.Conversation) -> ConversationOut:
        """The API view of a conversation."""
        last = None
        if conversation.last_author and conversation.last_at:
            last = LastMessageOut(
                author=conversation.last_author,
                text=conversation.last_text or "",
                timestamp=conversation.last_at,
            )
        ticket = conversation.ticket
        return cls(
            id=conversation.id,
            channel=conversation.channel,
            customer_id=conversation.customer_id,
            language=conversation.language,
            status=conversation.status,
            updated_at=conversation.updated_at,
            last_message=last,
            ticket=TicketOut(**ticket.__dict__) if ticket else None,
        )


class AttachmentOut(BaseModel):
    """A file the customer sent: `url` opens it for a few minutes (none if refused)."""

    id: str
    kind: str
    content_type: str | None
    size_bytes: int | None
    filename: str
    url: str | None
    refused: str | None


class MessageOut(BaseModel):
    """One message of the history; `delivery` is the send status of a reply."""

    id: str
    author: str
    text: str
    timestamp: datetime
    delivery: str | None
    delivery_detail: str = Field(default="", description="why a reply failed, if it did")
    attachments: list[AttachmentOut] = Field(default_factory=list)


class ConversationDetailOut(ConversationOut):
    """A conversation with its history."""

    messages: list[MessageOut]


class AgentReplyIn(BaseModel):
    """An agent's reply. Retrying with the same `client_message_id` sends it once."""

    text: SendableText
    client_message_id: str = Field(min_length=1, max_length=200)


class AgentReplyAccepted(BaseModel):
    """The reply is on its way to the customer's channel."""

    reply_id: str


class HandBackIn(BaseModel):
    """Why the conversation goes back to the bot (optional)."""

    note: str = Field(default="", max_length=2000)


class HandBackAccepted(BaseModel):
    """The hand-back is queued for the worker that owns the conversation."""

    conversation_id: str
    event_id: str


class AgentOut(BaseModel):
    """Who the key signs in."""

    tenant_id: str
    agent: str


def _require_reachable(conversation: inbox.Conversation, channels: ChannelSettings) -> None:
    """409 when the customer's channel would not take a reply now (WhatsApp's 24-hour
    window closed with no approved template configured), with the channel's reason."""
    try:
        channel = registry.channel(conversation.channel)
    except KeyError:
        return  # a channel no longer registered: the dispatcher reports it
    refusal = channel.refuses_reply(conversation.reply_metadata, channels)
    if refusal:
        raise GatewayError(409, refusal)


# ---- plumbing -------------------------------------------------------------------------


async def signed_in_agent(
    state: State, authorization: Annotated[str | None, Header()] = None
) -> TenantKey:
    """FastAPI dependency: the tenant key in `Authorization: Bearer …` (401 if none)."""
    scheme, _, key = (authorization or "").partition(" ")
    if scheme.lower() != "bearer" or not key.strip():
        raise Unauthorized("sign in with a tenant API key (Authorization: Bearer <key>)")
    async with _database(state):
        agent = await apikeys.authenticate(state.pool, key.strip())
    if agent is None:
        raise Unauthorized("unknown or revoked API key")
    return agent


Agent = Annotated[TenantKey, Depends(signed_in_agent)]


@asynccontextmanager
async def _database(state: GatewayState) -> AsyncIterator[None]:
    try:
        async with asyncio.timeout(state.settings.stage_timeout_s):
            yield
    except (psycopg.Error, TimeoutError) as err:
        log.warning("inbox database call failed", extra={"error": repr(err)})
        raise GatewayError(503, "database unavailable") from err


async def _publish(state: GatewayState, topic: str, key: str, value: bytes) -> None:
    try:
        async with asyncio.timeout(state.settings.stage_timeout_s):
            await state.producer.send_and_wait(topic, key=key.encode(), value=value)
    except (KafkaError, TimeoutError) as err:
        log.warning("inbox publish failed", extra={"topic": topic, "error": repr(err)})
        raise GatewayError(503, "could not reach the message broker; retry") from err


async def _owned(state: GatewayState, agent: TenantKey, conversation_id: str) -> inbox.Conversation:
    async with _database(state):
        conversation = await inbox.find_conversation(state.pool, agent.tenant_id, conversation_id)
    if conversation is None:  # another tenant's conversation looks like no conversation
        raise GatewayError(404, "unknown conversation")
    return conversation


def _require_human(conversation: inbox.Conversation) -> None:
    if conversation.status != "human":
        status = conversation.status
        raise GatewayError(409, f"the conversation is not with a human (status: {status})")


# ---- routes ---------------------------------------------------------------------------


@router.get("/inbox", include_in_schema=False)
async def inbox_page(state: State) -> HTMLResponse:
    """The agent inbox page (it asks for the API key itself), headed with the default
    tenant's name from its profile."""
    name = tenant_profile(state.settings.default_tenant).display_name or "clawdesk"
    return page("inbox.html", {"name": name})


@router.get("/api/inbox/me")
async def me(agent: Agent) -> AgentOut:
    """Who the key signs in (the page checks a key with it)."""
    return AgentOut(tenant_id=agent.tenant_id, agent=agent.name)


@router.get("/api/inbox/conversations")
async def list_conversations(agent: Agent, state: State) -> list[ConversationOut]:
    """The tenant's conversations a human owns, latest activity first."""
    async with _database(state):
        found = await inbox.human_conversations(state.pool, agent.tenant_id)
    return [ConversationOut.of(c) for c in found]


@router.get("/api/inbox/conversations/{conversation_id}")
async def get_conversation(
    conversation_id: ConversationId, agent: Agent, state: State, request: Request
) -> ConversationDetailOut:
    """A conversation of the tenant (whoever owns it now) with its history."""
    conversation = await _owned(state, agent, conversation_id)
    async with _database(state):
        messages = await inbox.history(state.pool, conversation_id)
        files = await attachments.of_conversation(state.pool, conversation_id)
    secret = conversation_tokens(request).secret
    ttl = state.settings.attachment_url_ttl_s
    by_message: dict[str, list[AttachmentOut]] = {}
    for f in files:
        url = attachments.signed_path(secret, f.id, ttl) if f.object_key else None
        out = AttachmentOut(
            id=f.id,
            kind=f.kind,
            content_type=f.content_type,
            size_bytes=f.size_bytes,
            filename=f.filename,
            url=url,
            refused=f.refused,
        )
        by_message.setdefault(f.message_id, []).append(out)
    return ConversationDetailOut(
        **ConversationOut.of(conversation).model_dump(),
        messages=[MessageOut(**m.__dict__, attachments=by_message.get(m.id, [])) for m in messages],
    )


@router.get("/api/attachments/{attachment_id}")
async def get_attachment(
    attachment_id: Annotated[str, PathParam(pattern=r"^att-[0-9a-f]{32}$")],
    state: State,
    request: Request,
    expires: Annotated[int, Query(ge=0, lt=2**40)],
    signature: Annotated[str, Query(min_length=64, max_length=64)],
) -> Response:
    """A customer's file through a short-lived signed link (an <img> sends no bearer
    token, so the link is the credential); 403 once it expired or if it is forged."""
    secret = conversation_tokens(request).secret
    if not attachments.link_holds(secret, attachment_id, expires, signature, now=time.time()):
        raise GatewayError(403, "the link is expired or not genuine")
    async with _database(state):
        found = await attachments.find(state.pool, attachment_id)
    if found is None or found[1].object_key is None:
        raise GatewayError(404, "unknown attachment")
    stored = found[1]
    try:
        data = await attachments.store_for(state.settings).get(stored.object_key or "")
    except KeyError as err:
        raise GatewayError(404, "the file is no longer stored") from err
    content_type = stored.content_type or "application/octet-stream"
    disposition = "inline" if content_type.startswith("image/") else "attachment"
    return Response(
        data,
        media_type=content_type,
        headers={
            "Content-Disposition": f'{disposition}; filename="{attachment_id}"',
            "X-Content-Type-Options": "nosniff",
            "Content-Security-Policy": "default-src 'none'; sandbox",
            "Cache-Control": f"private, max-age={max(0, expires - int(time.time()))}",
        },
    )


@router.post("/api/inbox/conversations/{conversation_id}/replies", status_code=202)
async def post_reply(
    conversation_id: ConversationId,
    body: AgentReplyIn,
    agent: Agent,
    state: State,
    request: Request,
) -> AgentReplyAccepted:
    """Send an agent's reply to the customer, through the channel they wrote on."""
    conversation = await _owned(state, agent, conversation_id)
    _require_human(conversation)
    _require_reachable(conversation, channel_settings_of(request))
    async with _database(state):
        in_reply_to = await inbox.last_customer_message_id(state.pool, conversation_id)
        reply = inbox.agent_reply(conversation, body.text, body.client_message_id, in_reply_to)
        await _send_agent_reply(state, reply, agent)
    return AgentReplyAccepted(reply_id=reply.reply_id)


async def _send_agent_reply(state: GatewayState, reply: Reply, agent: TenantKey) -> None:
    """Store the agent's message and publish it (reply, then the memory's turn)."""
    conversation_id = reply.conversation_id
    turn = inbox.agent_turn(reply, agent.name)
    # Stored and published together: if the broker refuses, nothing is stored and
    # the agent sees an error instead of a message that was never sent. The reply
    # goes first: memory must not hold a turn the customer was never sent; a retry
    # after a refused turn sends the reply again, which dispatch drops by reply id.
    async with state.pool.connection() as conn, conn.transaction():
        await inbox.store_agent_message(conn, reply)
        await _publish(state, reply_spec.name(state.settings), conversation_id, reply.to_bytes())
        await _publish(state, control_spec.name(state.settings), conversation_id, turn.to_bytes())
    log.info(
        "agent reply queued",
        extra={
            "conversation_id": conversation_id,
            "reply_id": reply.reply_id,
            "agent": agent.name,
            "files": len(reply.attachments),
        },
    )


@router.post("/api/inbox/images", status_code=202)
async def post_image(
    agent: Agent,
    state: State,
    request: Request,
    file: Annotated[UploadFile, File()],
    conversation_id: Annotated[str, Form(pattern=CONVERSATION_ID_PATTERN)],
    client_message_id: Annotated[str, Form(min_length=1, max_length=200)],
    caption: Annotated[str, Form(max_length=MAX_TEXT_CHARS)] = "",
) -> AgentReplyAccepted:
    """Send an image (with an optional caption) to the customer: checked like any
    channel's files (413 / 415, nothing stored), stored, then sent like a reply, by the
    channel's media send (or as a link where the channel sends no files)."""
    conversation = await _owned(state, agent, conversation_id)
    _require_human(conversation)
    _require_reachable(conversation, channel_settings_of(request))
    data, content_type = await read_image(file, state.settings, conversation.channel)
    async with _database(state):
        in_reply_to = await inbox.last_customer_message_id(state.pool, conversation_id)
    reply = inbox.agent_reply(conversation, caption.strip(), client_message_id, in_reply_to)
    att_id = uploads.upload_id(reply.reply_id, "image")
    key = uploads.upload_key(reply.tenant_id, reply.occurred_at, att_id, content_type)
    attachment = image_attachment(
        att_id, key, content_type, len(data), file.filename or "", f"upload:{att_id}"
    )
    reply = reply.model_copy(update={"attachments": [attachment]})
    store = attachments.store_for(state.settings)
    owner = uploads.Owner(reply.reply_id, conversation_id, reply.tenant_id, conversation.channel)
    async with _database(state):
        fresh = await uploads.store_image(state.pool, store, owner, attachment, data)
    try:
        async with _database(state):
            await _send_agent_reply(state, reply, agent)
    except GatewayError:
        if fresh:  # not sent, so not kept
            async with _database(state):
                await uploads.discard(state.pool, store, attachment)
        raise
    return AgentReplyAccepted(reply_id=reply.reply_id)


@router.post("/api/inbox/conversations/{conversation_id}/hand-back", status_code=202)
async def post_hand_back(
    conversation_id: ConversationId, agent: Agent, state: State, body: HandBackIn | None = None
) -> HandBackAccepted:
    """Give the conversation back to the bot; it answers the customer's next message."""
    conversation = await _owned(state, agent, conversation_id)
    _require_human(conversation)
    control = inbox.hand_back(conversation, agent.name, body.note if body else "")
    await _publish(state, control_spec.name(state.settings), conversation_id, control.to_bytes())
    log.info(
        "hand-back queued",
        extra={
            "conversation_id": conversation_id,
            "event_id": control.event_id,
            "agent": agent.name,
        },
    )
    return HandBackAccepted(conversation_id=conversation_id, event_id=control.event_id)
