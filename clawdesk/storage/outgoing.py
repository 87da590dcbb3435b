"""Sending a reply that carries files (an agent's image from the inbox).

The dispatcher sends every reply through `send_reply`. A reply without files goes
straight to its channel. A reply with files has them read back from the object store
and goes through the channel's media send (Telegram `sendPhoto`, a WhatsApp image
message, a WeChat customer-service image, the web widget inline); a channel that sends
no files gets the text with a signed link to each file (or a note, when the gateway has
no public address to link to).
"""

from __future__ import annotations

from clawdesk.settings import AppSettings, app_settings
from clawdesk.storage import attachments
from clawdesk.storage.objects import ObjectStore
from clawdesk.web_secret import load_secret
from connectors import registry
from connectors.config import DeliveryError
from connectors.media import OutgoingFile
from schemas import Reply


async def load_files(reply: Reply, store: ObjectStore, settings: AppSettings) -> list[OutgoingFile]:
    """The reply's stored files; DeliveryError for one no longer stored (not retried)."""
    files: list[OutgoingFile] = []
    # A link only opens at the gateway if it checks it with the same secret: configured
    # for both (a worker's own data-dir secret would sign links no gateway accepts).
    configured = settings.web_token_secret and settings.web_token_secret.get_secret_value()
    secret = load_secret(settings) if configured and settings.public_url else b""
    ttl = settings.attachment_link_ttl_s
    for att in reply.attachments:
        if not att.object_key or not att.attachment_id:
            raise DeliveryError("a file of the reply was never stored")
        try:
            data = await store.get(att.object_key)
        except KeyError as err:
            raise DeliveryError(f"the file {att.attachment_id} is no longer stored") from err
        link = ""
        if secret:
            path = attachments.signed_path(secret, att.attachment_id, ttl)
            link = settings.public_url.rstrip("/") + path
        content_type = att.content_type or "application/octet-stream"
        files.append(OutgoingFile(data, content_type, att.filename, link))
    return files


def with_links(reply: Reply, files: list[OutgoingFile]) -> Reply:
    """The reply as text alone, each file as a link (for channels that send no files)."""
    lines = [f.link or f"[image: {f.filename or 'image'}]" for f in files]
    text = "\n\n".join([reply.text, *lines]) if reply.text else "\n\n".join(lines)
    return reply.model_copy(update={"text": text, "attachments": []})


async def send_reply(reply: Reply, settings: AppSettings | None = None) -> str:
    """Send the reply through its channel, its files by the channel's media send where
    it has one; the provider's message id."""
    if not reply.attachments:
        return await registry.send_reply(reply)
    settings = settings or app_settings()
    channel = registry.channel(reply.channel.value)
    files = await load_files(reply, attachments.store_for(settings), settings)
    if channel.sends_media:
        return await channel.send_media(reply, files)
    return await channel.send(with_links(reply, files))
