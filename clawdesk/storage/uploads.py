"""Files uploaded straight to the gateway: a web customer's image, an agent's image.

They pass the same checks as the files ingest fetches from a provider
(`clawdesk.storage.attachments`): the size cap, the type sniffed from the bytes (the
browser's word is not taken), the allowed types; a refused file is counted under the
same metric and nothing of it is stored. A taken file is written to the object store and
recorded in `attachments` under the id ingest would give it, so ingest finds it taken
already and does not fetch it again. `discard` undoes both when what the file came with
could not be taken (the message refused), so nothing is left half-stored.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from datetime import datetime

from psycopg_pool import AsyncConnectionPool

from clawdesk.settings import AppSettings
from clawdesk.storage.attachments import ATTACHMENTS, Refusal, sniff
from clawdesk.storage.objects import ObjectStore
from schemas import Attachment

# Only pictures are taken from the widget and the inbox (not every type a provider
# may carry): they are what the widget and the channels' image messages show inline.
IMAGE_TYPES = ("image/jpeg", "image/png", "image/gif", "image/webp")
_EXTENSIONS = {"image/jpeg": "jpg", "image/png": "png", "image/gif": "gif", "image/webp": "webp"}


class UploadRefused(Exception):
    """The file is not taken; `status` and `str(self)` are the HTTP answer."""

    def __init__(self, refusal: Refusal, status: int, message: str) -> None:
        super().__init__(message)
        self.refusal = refusal
        self.status = status


def allowed_images(settings: AppSettings) -> list[str]:
    """The image types the deployment takes (its attachment types, images only)."""
    return [t for t in settings.attachment_types if t in IMAGE_TYPES]


def check_image(data: bytes, settings: AppSettings, *, channel: str) -> str:
    """The sniffed content type of an image within the cap and allowed; otherwise
    UploadRefused (413 too large, 415 not an allowed image), counted as refused."""
    if len(data) > settings.attachment_max_bytes:
        raise too_large(settings, channel)
    content_type = sniff(data)
    allowed = allowed_images(settings)
    if content_type not in allowed:
        ATTACHMENTS.labels(channel, "image", Refusal.TYPE_NOT_ALLOWED.value).inc()
        names = ", ".join(_EXTENSIONS[t].upper() for t in allowed)
        raise UploadRefused(Refusal.TYPE_NOT_ALLOWED, 415, f"only images can be sent ({names})")
    return content_type


def too_large_message(settings: AppSettings) -> str:
    """What a customer or an agent is told about an image over the cap."""
    return f"the image is too large (the limit is {_size(settings.attachment_max_bytes)})"


def too_large(settings: AppSettings, channel: str) -> UploadRefused:
    """The refusal of an image over the cap (counted)."""
    ATTACHMENTS.labels(channel, "image", Refusal.TOO_LARGE.value).inc()
    return UploadRefused(Refusal.TOO_LARGE, 413, too_large_message(settings))


def _size(n: int) -> str:
    return f"{n / (1024 * 1024):.0f} MB" if n >= 1024 * 1024 else f"{n // 1024} KB"


def upload_id(scope: str, client_id: str) -> str:
    """The attachment id of an upload, the same for a retried one (same client id)."""
    digest = hashlib.sha256(f"upload\n{scope}\n{client_id}".encode()).hexdigest()
    return f"att-{digest[:32]}"


def upload_key(tenant_id: str, when: datetime, att_id: str, content_type: str) -> str:
    """Where an upload lives in the store: by tenant and day, like fetched files."""
    tenant = "".join(c if c.isalnum() or c in "-_" else "_" for c in tenant_id)
    return f"{tenant}/{when:%Y/%m/%d}/{att_id}.{_EXTENSIONS.get(content_type, 'bin')}"


@dataclass(frozen=True)
class Owner:
    """What an upload belongs to: the message (or reply) and its conversation."""

    message_id: str
    conversation_id: str
    tenant_id: str
    channel: str


async def store_image(
    pool: AsyncConnectionPool,
    store: ObjectStore,
    owner: Owner,
    attachment: Attachment,
    data: bytes,
) -> bool:
    """Write a checked image (`attachment` has its id, type and key) to the store, then
    record it; the row comes last, so a failed write leaves no row pointing nowhere.
    False when a retried upload of the same id was recorded before (only a fresh one
    may be discarded: the first may already be on its way)."""
    assert attachment.attachment_id and attachment.object_key and attachment.content_type
    await store.put(attachment.object_key, data, attachment.content_type)
    try:
        async with pool.connection() as conn:
            cur = await conn.execute(
                "INSERT INTO attachments (id, message_id, conversation_id, tenant_id, channel,"
                " kind, provider_ref, object_key, content_type, size_bytes, sha256, filename)"
                " VALUES (%s, %s, %s, %s, %s, 'image', %s, %s, %s, %s, %s, %s)"
                " ON CONFLICT (id) DO NOTHING",
                (
                    attachment.attachment_id,
                    owner.message_id,
                    owner.conversation_id,
                    owner.tenant_id,
                    owner.channel,
                    attachment.provider_ref,
                    attachment.object_key,
                    attachment.content_type,
                    len(data),
                    hashlib.sha256(data).hexdigest(),
                    attachment.filename,
                ),
            )
            fresh = cur.rowcount == 1
    except BaseException:
        await store.delete(attachment.object_key)
        raise
    ATTACHMENTS.labels(owner.channel, "image", "stored").inc()
    return fresh


async def discard(pool: AsyncConnectionPool, store: ObjectStore, attachment: Attachment) -> None:
    """Remove a stored upload and its row (what it came with was not taken)."""
    async with pool.connection() as conn:
        await conn.execute("DELETE FROM attachments WHERE id = %s", (attachment.attachment_id,))
    if attachment.object_key:
        await store.delete(attachment.object_key)
