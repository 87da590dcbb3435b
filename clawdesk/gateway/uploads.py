"""Images posted to the gateway: a web customer's (`POST /api/web/images`) and a
human agent's (`POST /api/inbox/images`, in `clawdesk.gateway.inbox`).

Both are multipart forms (`file`, plus the message's fields). The body bounds itself
(the global body limit is for JSON, well under an image's cap): the gateway's
BodySizeLimit cuts off a body past the cap plus the form (`upload_limits`) while it
streams, and the file itself must be within the cap. The image is checked like every channel's files
(`clawdesk.storage.uploads.check_image`), stored, then its message is taken like any
other web message (inbound log, then the topic); a message that is refused takes its
image with it.
"""

from __future__ import annotations

import logging
from typing import Annotated

import psycopg
from fastapi import APIRouter, File, Form, Header, Request, UploadFile
from pydantic import ValidationError

from clawdesk.gateway.limits import PathLimit
from clawdesk.gateway.metrics import MESSAGES
from clawdesk.gateway.models import Accepted, WebMessageIn
from clawdesk.gateway.routes import (
    GatewayError,
    State,
    Tokens,
    admit_or_refuse,
    check_rate,
    known_tenant,
    message_owner,
    to_inbound,
)
from clawdesk.gateway.tokens import bearer
from clawdesk.settings import AppSettings
from clawdesk.storage import attachments, uploads
from schemas import Attachment, MessageKind

log = logging.getLogger(__name__)

router = APIRouter()

# What a multipart form adds around the file (boundaries, headers, the small fields).
FORM_OVERHEAD_BYTES = 16 * 1024
UPLOAD_PATHS = ("/api/web/images", "/api/inbox/images")


def upload_limits(settings: AppSettings) -> dict[str, PathLimit]:
    """The body limits of the upload routes (their file cap plus the form), for the
    gateway's BodySizeLimit: a larger body is cut off while it streams, never spooled."""
    limit = PathLimit(
        settings.attachment_max_bytes + FORM_OVERHEAD_BYTES,
        uploads.too_large_message(settings),
    )
    return dict.fromkeys(UPLOAD_PATHS, limit)


def refused(err: uploads.UploadRefused) -> GatewayError:
    """The 4xx of a refused image, with the reason as its machine code."""
    return GatewayError(err.status, str(err), code=err.refusal.value)


async def read_image(file: UploadFile, settings: AppSettings, channel: str) -> tuple[bytes, str]:
    """The checked image's bytes and sniffed type (413 / 415 otherwise, counted)."""
    data = await file.read(settings.attachment_max_bytes + 1)
    try:
        return data, uploads.check_image(data, settings, channel=channel)
    except uploads.UploadRefused as err:
        raise refused(err) from None


def image_attachment(
    att_id: str, key: str, content_type: str, size: int, filename: str, ref: str
) -> Attachment:
    """The attachment of a stored upload (what ingest and the dispatcher read)."""
    return Attachment(
        kind="image",
        provider_ref=ref,
        declared_type=content_type,
        declared_bytes=size,
        filename=filename[:255],
        attachment_id=att_id,
        object_key=key,
        content_type=content_type,
        size_bytes=size,
    )


@router.post("/api/web/images", status_code=202)
async def post_web_image(
    state: State,
    request: Request,
    tokens: Tokens,
    file: Annotated[UploadFile, File()],
    client_message_id: Annotated[str, Form(min_length=1, max_length=200)],
    conversation_id: Annotated[str | None, Form()] = None,
    customer_id: Annotated[str | None, Form()] = None,
    tenant_id: Annotated[str | None, Form()] = None,
    caption: Annotated[str, Form(max_length=4000)] = "",
    authorization: Annotated[str | None, Header()] = None,
) -> Accepted:
    """A customer's image (the caption is the message's text), taken like a message:
    answered once it is recorded; 413 / 415 for a file that is not taken (nothing
    stored or enqueued)."""
    try:
        fields = WebMessageIn(
            conversation_id=conversation_id or None,
            customer_id=customer_id or None,
            tenant_id=tenant_id or None,
            text=caption.strip() or "-",  # a placeholder: an image needs no caption
            client_message_id=client_message_id,
        )
    except ValidationError as err:  # the form's fields, checked like a JSON message's
        fields_named = ", ".join(str(e["loc"][0]) for e in err.errors() if e.get("loc"))
        raise GatewayError(422, f"invalid fields: {fields_named}") from None
    try:
        owner = message_owner(fields, state.settings.default_tenant, tokens, bearer(authorization))
    except GatewayError:
        MESSAGES.labels(outcome="forbidden").inc()
        raise
    if not await known_tenant(state, owner.tenant_id):
        MESSAGES.labels(outcome="unknown_tenant").inc()
        raise GatewayError(404, "unknown tenant")
    data, content_type = await read_image(file, state.settings, "web")
    text = caption.strip()
    msg = to_inbound(fields, owner).model_copy(
        update={"text": text, "kind": MessageKind.TEXT if text else MessageKind.MEDIA}
    )
    await check_rate(request, [msg])
    att_id = uploads.upload_id(msg.conversation_id, client_message_id)
    attachment = image_attachment(
        att_id,
        uploads.upload_key(msg.tenant_id, msg.received_at, att_id, content_type),
        content_type,
        len(data),
        file.filename or "",
        f"upload:{client_message_id}",
    )
    msg = msg.model_copy(update={"attachments": [attachment]})
    store = attachments.store_for(state.settings)
    where = uploads.Owner(msg.event_id, msg.conversation_id, msg.tenant_id, "web")
    try:
        fresh = await uploads.store_image(state.pool, store, where, attachment, data)
    except (psycopg.Error, OSError) as err:
        log.warning("image not stored", extra={"error": repr(err)})
        MESSAGES.labels(outcome="unavailable").inc()
        raise GatewayError(503, "the image could not be stored; retry") from err
    try:
        await admit_or_refuse(state, [msg])
    except GatewayError:
        if fresh:  # nothing half-stored: the message is not taken, neither is its image
            await uploads.discard(state.pool, store, attachment)
        MESSAGES.labels(outcome="unavailable").inc()
        raise
    MESSAGES.labels(outcome="enqueued").inc()
    log.info(
        "image message enqueued",
        extra={"event_id": msg.event_id, "conversation_id": msg.conversation_id, "size": len(data)},
    )
    return Accepted(
        conversation_id=msg.conversation_id,
        event_id=msg.event_id,
        token=tokens.issue(owner.tenant_id, msg.conversation_id),
    )
