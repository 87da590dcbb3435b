"""Customers' files: fetched from the provider, checked, stored, recorded.

Ingest calls `take` for a message with attachments. Each file is fetched by its
channel's `fetch_media` (capped while streaming), its type is sniffed from the bytes
(the provider's word is not taken), and only a file within the cap and of an allowed
type is written to the object store and recorded in `attachments`. A refused file is
recorded with the reason and no object, and counted; nothing of it is stored. A
provider that cannot answer now raises (the message is retried or parked, not lost).
"""

from __future__ import annotations

import hashlib
import hmac
import logging
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from enum import StrEnum
from functools import lru_cache
from pathlib import Path
from typing import Any

import filetype
from prometheus_client import Counter
from psycopg_pool import AsyncConnectionPool

from clawdesk.settings import AppSettings, ChannelSettings
from clawdesk.storage import ObjectStore, open_store
from connectors import registry
from connectors.media import Fetched, MediaGone, MediaTooLarge
from schemas import Attachment, Channel, InboundMessage

log = logging.getLogger(__name__)

ATTACHMENTS = Counter(
    "clawdesk_attachments",
    "Files customers sent, by channel, kind and outcome (stored, too_large, "
    "type_not_allowed, gone)",
    ["channel", "kind", "outcome"],
)

Fetch = Callable[[Attachment, int], Awaitable[Fetched]]


class Refusal(StrEnum):
    """Why a file was not stored."""

    TOO_LARGE = "too_large"
    TYPE_NOT_ALLOWED = "type_not_allowed"
    GONE = "gone"  # the provider no longer has it


@dataclass(frozen=True)
class Taken:
    """One file of a message: stored (`attachment` has its object key) or refused."""

    attachment: Attachment
    refused: Refusal | None = None
    sha256: str | None = None


def attachment_id(msg: InboundMessage, attachment: Attachment) -> str:
    """The same id for the same file of the same message, however often it is taken."""
    digest = hashlib.sha256(f"{msg.event_id}\n{attachment.provider_ref}".encode()).hexdigest()
    return f"att-{digest[:32]}"


def sniff(data: bytes) -> str | None:
    """The content type the bytes show (magic numbers), or None if unknown."""
    kind = filetype.guess(data)
    return kind.mime if kind is not None else None


def object_key(msg: InboundMessage, att_id: str, content_type: str) -> str:
    """Where a file lives in the store: by tenant and day, named by its id."""
    extension = filetype.get_type(mime=content_type)
    suffix = f".{extension.extension}" if extension is not None else ""
    tenant = "".join(c if c.isalnum() or c in "-_" else "_" for c in msg.tenant_id)
    return f"{tenant}/{msg.received_at:%Y/%m/%d}/{att_id}{suffix}"


@lru_cache(maxsize=4)
def _store(url: str, data_dir: str, access_key: str, secret_key: str) -> ObjectStore:
    return open_store(url, Path(data_dir), access_key=access_key, secret_key=secret_key)


def store_for(settings: AppSettings) -> ObjectStore:
    """The object store the settings name (one per process and URL)."""
    secret = settings.attachment_store_secret_key
    return _store(
        settings.attachment_store_url,
        str(settings.data_dir),
        settings.attachment_store_access_key,
        secret.get_secret_value() if secret else "",
    )


def channel_fetcher(channel: Channel, channels: ChannelSettings | None = None) -> Fetch | None:
    """The channel's file fetcher bound to its settings (None: the environment's), or
    None if the channel carries no files."""
    found = registry.channel(channel.value)
    if not getattr(found, "has_media", True):
        return None

    async def fetch(attachment: Attachment, max_bytes: int) -> Fetched:
        fetched: Fetched = await found.fetch_media(attachment, max_bytes, channels)
        return fetched

    return fetch


async def take(
    msg: InboundMessage,
    *,
    pool: AsyncConnectionPool,
    store: ObjectStore,
    settings: AppSettings,
    channels: ChannelSettings | None = None,
) -> list[Taken]:
    """Fetch, check, store and record every file of the message (once per file)."""
    fetch = channel_fetcher(msg.channel, channels)
    taken: list[Taken] = []
    for attachment in msg.attachments:
        # A file uploaded to the gateway (web widget) comes stored and keeps its id.
        att_id = attachment.attachment_id or attachment_id(msg, attachment)
        known = await _recorded(pool, attachment, att_id)
        if known is not None:  # a redelivered message: its files are taken already
            taken.append(known)
            continue
        result = await _take_one(msg, attachment, att_id, store, settings, fetch)
        await _record(pool, msg, result)
        outcome = result.refused.value if result.refused else "stored"
        ATTACHMENTS.labels(msg.channel.value, attachment.kind, outcome).inc()
        taken.append(result)
    return taken


async def _take_one(
    msg: InboundMessage,
    attachment: Attachment,
    att_id: str,
    store: ObjectStore,
    settings: AppSettings,
    fetch: Fetch | None,
) -> Taken:
    with_id = attachment.model_copy(update={"attachment_id": att_id})
    if fetch is None:
        return Taken(with_id, Refusal.TYPE_NOT_ALLOWED)
    try:
        fetched = await fetch(attachment, settings.attachment_max_bytes)
    except MediaTooLarge as err:
        log.info("attachment refused: too large", extra={"id": att_id, "size": err.size})
        return Taken(with_id, Refusal.TOO_LARGE)
    except MediaGone as err:
        log.warning("attachment gone at the provider", extra={"id": att_id, "error": str(err)})
        return Taken(with_id, Refusal.GONE)
    content_type = sniff(fetched.data)
    if content_type is None or content_type not in settings.attachment_types:
        log.info(
            "attachment refused: type",
            extra={"id": att_id, "sniffed": content_type, "declared": fetched.declared_type},
        )
        sniffed = with_id.model_copy(update={"content_type": content_type})
        return Taken(sniffed, Refusal.TYPE_NOT_ALLOWED)
    key = object_key(msg, att_id, content_type)
    await store.put(key, fetched.data, content_type)
    stored = with_id.model_copy(
        update={"object_key": key, "content_type": content_type, "size_bytes": len(fetched.data)}
    )
    return Taken(stored, sha256=hashlib.sha256(fetched.data).hexdigest())


async def _recorded(pool: AsyncConnectionPool, attachment: Attachment, att_id: str) -> Taken | None:
    """The file as an earlier take of the same message left it, if it did."""
    async with pool.connection() as conn:
        cur = await conn.execute(
            "SELECT object_key, content_type, size_bytes, refused, sha256 FROM attachments"
            " WHERE id = %s",
            (att_id,),
        )
        row: dict[str, Any] | None = await cur.fetchone()  # type: ignore[assignment]
    if row is None:
        return None
    known = attachment.model_copy(
        update={
            "attachment_id": att_id,
            "object_key": row["object_key"],
            "content_type": row["content_type"],
            "size_bytes": row["size_bytes"],
        }
    )
    refused = Refusal(row["refused"]) if row["refused"] else None
    return Taken(known, refused, row["sha256"])


async def _record(pool: AsyncConnectionPool, msg: InboundMessage, taken: Taken) -> None:
    att = taken.attachment
    async with pool.connection() as conn:
        await conn.execute(
            "INSERT INTO attachments (id, message_id, conversation_id, tenant_id, channel, kind,"
            " provider_ref, object_key, content_type, size_bytes, sha256, filename, refused)"
            " VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s)"
            " ON CONFLICT (id) DO NOTHING",
            (
                att.attachment_id,
                msg.event_id,
                msg.conversation_id,
                msg.tenant_id,
                msg.channel.value,
                att.kind,
                att.provider_ref,
                att.object_key,
                att.content_type,
                att.size_bytes,
                taken.sha256,
                att.filename,
                taken.refused.value if taken.refused else None,
            ),
        )


@dataclass(frozen=True)
class StoredAttachment:
    """An attachment row as the inbox shows it."""

    id: str
    message_id: str
    kind: str
    content_type: str | None
    size_bytes: int | None
    filename: str
    object_key: str | None
    refused: str | None


async def of_conversation(
    pool: AsyncConnectionPool, conversation_id: str
) -> list[StoredAttachment]:
    """The conversation's files, oldest first."""
    async with pool.connection() as conn:
        cur = await conn.execute(
            "SELECT id, message_id, kind, content_type, size_bytes, filename, object_key, refused"
            " FROM attachments WHERE conversation_id = %s ORDER BY created_at, id",
            (conversation_id,),
        )
        rows: list[dict[str, Any]] = await cur.fetchall()  # type: ignore[assignment]
    return [StoredAttachment(**row) for row in rows]


async def find(pool: AsyncConnectionPool, att_id: str) -> tuple[str, StoredAttachment] | None:
    """(tenant id, attachment) of a stored file, or None."""
    async with pool.connection() as conn:
        cur = await conn.execute(
            "SELECT tenant_id, id, message_id, kind, content_type, size_bytes, filename,"
            " object_key, refused FROM attachments WHERE id = %s",
            (att_id,),
        )
        row: dict[str, Any] | None = await cur.fetchone()  # type: ignore[assignment]
    if row is None:
        return None
    tenant = row.pop("tenant_id")
    return tenant, StoredAttachment(**row)


# --- short-lived links --------------------------------------------------------------


def sign(secret: bytes, att_id: str, expires: int) -> str:
    """The signature of a link to a file that works until `expires` (unix seconds)."""
    return hmac.new(secret, f"attachment\n{att_id}\n{expires}".encode(), hashlib.sha256).hexdigest()


def signed_path(secret: bytes, att_id: str, ttl_s: int, *, now: float | None = None) -> str:
    """A link to the file for `ttl_s` seconds (the inbox shows files through these)."""
    expires = int((time.time() if now is None else now) + ttl_s)
    return f"/api/attachments/{att_id}?expires={expires}&signature={sign(secret, att_id, expires)}"


def link_holds(secret: bytes, att_id: str, expires: int, signature: str, *, now: float) -> bool:
    """Whether a link is genuine and not expired."""
    if expires < now:
        return False
    return hmac.compare_digest(sign(secret, att_id, expires), signature)


def stored_only(taken: Sequence[Taken]) -> list[Attachment]:
    """The attachments that were stored."""
    return [t.attachment for t in taken if t.refused is None]
