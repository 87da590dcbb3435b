"""The e-mail channel.

Inbound, two ways: `watch_mailbox` polls an IMAP mailbox (stdlib `imaplib` in a
thread), and the gateway's `/webhooks/email` takes a raw RFC 822 message POSTed by a
mail relay, signed like clawdesk's own callbacks. Either way `parse_email` keeps the
new text of the message (quoted history cut off), and names the conversation after
the thread's root Message-ID (first of `References`, else `In-Reply-To`, else its
own), so every mail of a thread lands in one conversation.
Outbound: SMTP (aiosmtplib), with `In-Reply-To`/`References` so the reply threads.
"""

from __future__ import annotations

import asyncio
import hashlib
import imaplib
import logging
import re
import time
from collections.abc import AsyncIterator, Callable, Iterator, Sequence
from contextlib import contextmanager
from email import policy
from email.headerregistry import Address
from email.message import EmailMessage
from email.parser import BytesParser
from email.utils import getaddresses, make_msgid, parseaddr
from html.parser import HTMLParser
from typing import Annotated, Any

import aiosmtplib
from fastapi import APIRouter, Header, Request

from connectors.base import ChannelModule, Intake, NotConfigured, PollSource
from connectors.config import (
    ChannelSettings,
    DeliveryError,
    ProviderUnavailable,
    channel_settings,
    send_retrying,
)
from connectors.signatures import (
    CLAWDESK_SIGNATURE_HEADER,
    CLAWDESK_TIMESTAMP_HEADER,
    PayloadError,
    UnknownTenant,
    verify_timestamped,
)
from schemas import Channel, DeliveryReceipt, DeliveryStatus, InboundMessage, Reply

log = logging.getLogger(__name__)

META_MESSAGE_ID = "email_message_id"
META_REFERENCES = "email_references"
META_SUBJECT = "email_subject"
MAX_TEXT = 20_000
MAX_REFERENCES_CHARS = 2_000
IMAP_BATCH = 50
IMAP_TIMEOUT_S = 30.0

# Where quoted history starts; everything from that line on is dropped.
# "On <date>, <name> wrote:" (Gmail may wrap it onto two lines) and its Chinese twin:
_QUOTE_INTROS = [
    re.compile(r"^\s*On\b.{0,300}\bwrote:\s*$", re.IGNORECASE),
    re.compile(r"^\s*在.{0,300}写道\s*[:：]\s*$"),
]
_QUOTE_RULES = [
    re.compile(r"^\s*-{2,}\s*(Original Message|原始邮件|Forwarded message)\s*-{2,}", re.I),
    re.compile(r"^\s*_{10,}\s*$"),  # Outlook's rule above "From: ... Sent: ..."
]
# Outlook without the rule: a "From:" line directly followed by "Sent:" / "Date:".
_HEADER_FROM = re.compile(r"^\s*(From|发件人)\s*[:：]")
_HEADER_NEXT = re.compile(r"^\s*(Sent|Date|发送时间|日期)\s*[:：]")
_SIGNATURE = "-- "
_MESSAGE_ID = re.compile(r"<[^<>\s]{1,250}>")

TenantFor = Callable[[Sequence[str]], str | None]


def tenant_resolver(settings: ChannelSettings, default_tenant: str) -> TenantFor:
    """Recipient addresses → tenant: the first configured one, or the default."""
    if not settings.email_tenants:
        return lambda _recipients: default_tenant
    tenants = {address.lower(): tenant for address, tenant in settings.email_tenants.items()}

    def resolve(recipients: Sequence[str]) -> str | None:
        return next((tenants[r] for r in recipients if r in tenants), None)

    return resolve


def strip_quoted(text: str) -> str:
    """The new part of a reply: up to the first quote header, without `>` lines or the
    signature."""
    lines = text.replace("\r\n", "\n").split("\n")
    kept: list[str] = []
    for i, line in enumerate(lines):
        following = lines[i + 1] if i + 1 < len(lines) else ""
        if _starts_quote(line, following):
            break
        if not line.lstrip().startswith(">"):
            kept.append(line.rstrip())
    return "\n".join(kept).strip()


def _starts_quote(line: str, following: str) -> bool:
    if any(p.match(line) for p in _QUOTE_INTROS):
        return True
    # A wrapped intro: this line and the next make one, and the next is not one alone.
    if not any(p.match(following) for p in _QUOTE_INTROS) and any(
        p.match(f"{line} {following}") for p in _QUOTE_INTROS
    ):
        return True
    return (
        any(p.match(line) for p in _QUOTE_RULES)
        or any(p.match(line) for p in _QUOTE_RULES)
        or line == _SIGNATURE
        or bool(_HEADER_FROM.match(line) and _HEADER_NEXT.match(following))
    )


def message_ids(value: str | None) -> list[str]:
    """The `<id>`s in a References / In-Reply-To / Message-ID header value."""
    return _MESSAGE_ID.findall(value or "")


def thread_root(message_id: str, references: str | None, in_reply_to: str | None) -> str:
    """The Message-ID the thread started with."""
    return (message_ids(references) or message_ids(in_reply_to) or [message_id])[0]


def conversation_id(root: str) -> str:
    """A URL-safe conversation id for a thread root (Message-IDs carry `<@>`)."""
    return "email:" + hashlib.sha256(root.encode()).hexdigest()[:32]


def parse_email(raw: bytes, *, tenant_for: TenantFor) -> InboundMessage | None:
    """The InboundMessage of a raw RFC 822 message; None for auto-replies, bulk mail
    and messages with no new text. PayloadError if it has no usable sender."""
    try:
        message = BytesParser(policy=policy.default).parsebytes(raw)
        return _to_event(message, raw, tenant_for)
    except (PayloadError, UnknownTenant):
        raise
    except Exception as err:
        # The email package raises assorted errors on hostile headers and charsets.
        raise PayloadError(f"unparsable message: {type(err).__name__}") from err


to_event = parse_email


def _to_event(message: EmailMessage, raw: bytes, tenant_for: TenantFor) -> InboundMessage | None:
    sender = _address(str(message.get("From", "")))
    if sender is None:
        raise PayloadError("the message has no sender address")
    if _is_automatic(message):
        log.info("skipping automatic mail", extra={"sender_domain": sender.split("@")[-1]})
        return None
    recipients = [a.lower() for _, a in getaddresses(_recipient_headers(message)) if "@" in a]
    tenant_id = tenant_for(recipients)
    if tenant_id is None:
        raise UnknownTenant("no tenant for the message's recipients")
    own = (message_ids(str(message.get("Message-ID", ""))) or [_synthetic_id(raw)])[0]
    text = strip_quoted(_body_text(message))
    if not text:
        return None
    references = " ".join([*message_ids(str(message.get("References", ""))), own])[
        -MAX_REFERENCES_CHARS:
    ]
    root = thread_root(own, str(message.get("References", "")), str(message.get("In-Reply-To", "")))
    return InboundMessage(
        conversation_id=conversation_id(root),
        tenant_id=tenant_id,
        channel=Channel.EMAIL,
        channel_message_id=own[:200],
        customer_id=sender,
        text=text[:MAX_TEXT],
        metadata={
            META_MESSAGE_ID: own,
            META_REFERENCES: references[references.find("<") :],
            META_SUBJECT: str(message.get("Subject", ""))[:300],
        },
    )


def parse_bounce(raw: bytes, *, tenant_for: TenantFor) -> DeliveryReceipt | None:
    """A FAILED receipt for our reply that a bounce (an RFC 3464 delivery status
    notification, `multipart/report; report-type=delivery-status`) reports as undeliverable;
    None for any other mail, and for delays (`Action: delayed`)."""
    try:
        message = BytesParser(policy=policy.default).parsebytes(raw)
        if message.get_content_type() != "multipart/report":
            return None
        if str(message.get_param("report-type", "")).lower() != "delivery-status":
            return None
        failures = [b for b in _status_blocks(message) if b.get("Action", "").lower() == "failed"]
        original = _returned_headers(message)
    except Exception as err:  # hostile MIME: refuse it like any unparsable mail
        raise PayloadError(f"unparsable delivery report: {type(err).__name__}") from err
    if not failures or original is None:
        return None
    found = message_ids(str(original.get("Message-ID", "")))
    if not found:
        return None
    ours = found[0]
    recipients = [a.lower() for _, a in getaddresses(_recipient_headers(message)) if "@" in a]
    tenant_id = tenant_for(recipients)
    if tenant_id is None:
        raise UnknownTenant("no tenant for the report's recipients")
    root = thread_root(
        ours, str(original.get("References", "")), str(original.get("In-Reply-To", ""))
    )
    detail = "; ".join(
        f"{b.get('Status', '')} {b.get('Diagnostic-Code', '')}".strip() for b in failures
    )
    return DeliveryReceipt(
        conversation_id=conversation_id(root),
        tenant_id=tenant_id,
        channel=Channel.EMAIL,
        reply_id=ours[:200],  # the dispatcher stored our Message-ID as the provider's id
        status=DeliveryStatus.FAILED,
        provider_message_id=ours,
        detail=detail[:500],
    )


def _status_blocks(report: EmailMessage) -> list[dict[str, str]]:
    """The per-recipient fields of the report's message/delivery-status part."""
    blocks: list[dict[str, str]] = []
    for part in report.walk():
        if part.get_content_type() != "message/delivery-status":
            continue
        for block in part.get_payload():
            if hasattr(block, "items"):
                blocks.append({str(k): str(v) for k, v in block.items()})
    return blocks


def _returned_headers(report: EmailMessage) -> EmailMessage | None:
    """The headers of the message that bounced (text/rfc822-headers or message/rfc822)."""
    for part in report.walk():
        kind = part.get_content_type()
        if kind == "message/rfc822":
            inner = part.get_payload()
            first = inner[0] if isinstance(inner, list) and inner else None
            return first if isinstance(first, EmailMessage) else None
        if kind == "text/rfc822-headers":
            payload = part.get_payload(decode=True)
            if isinstance(payload, bytes):
                return BytesParser(policy=policy.default).parsebytes(payload, headersonly=True)
    return None


def _address(value: str) -> str | None:
    _, address = parseaddr(value)
    address = address.strip().lower()
    local, _, domain = address.partition("@")
    if not local or not domain or "@" in domain or len(address) > 200:
        return None
    # U+FFFD: bytes the header had that decode to nothing; no reply can reach such an address.
    if any(c in address for c in '\ufffd <>"') or not address.isprintable():
        return None
    return address


def _recipient_headers(message: EmailMessage) -> list[str]:
    return [
        str(v)
        for name in ("Delivered-To", "X-Original-To", "To", "Cc")
        for v in message.get_all(name, [])
    ]


def _is_automatic(message: EmailMessage) -> bool:
    """Auto-replies, bounces and list mail: answering them starts mail loops."""
    auto = str(message.get("Auto-Submitted", "no")).strip().lower()
    precedence = str(message.get("Precedence", "")).strip().lower()
    return (
        auto != "no"
        or precedence in ("bulk", "junk", "list", "auto_reply")
        or "X-Autoreply" in message
        or "X-Autorespond" in message
        or "List-Id" in message
    )


def _synthetic_id(raw: bytes) -> str:
    # Without a Message-ID the content names the mail, so a redelivery still dedupes.
    return f"<{hashlib.sha256(raw).hexdigest()[:40]}@clawdesk.invalid>"


def _body_text(message: EmailMessage) -> str:
    part = message.get_body(preferencelist=("plain", "html"))
    if part is None:
        return ""
    try:
        content = part.get_content()
    except (LookupError, UnicodeError):  # unknown or lying charset
        payload = part.get_payload(decode=True)
        content = payload.decode("utf-8", "replace") if isinstance(payload, bytes) else ""
    if not isinstance(content, str):
        return ""
    return _html_text(content) if part.get_content_subtype() == "html" else content


class _TextOfHtml(HTMLParser):
    _BREAKS = frozenset({"br", "p", "div", "li", "tr", "blockquote"})

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.chunks: list[str] = []
        self._skip = 0
        self._quoted = 0

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag in ("script", "style", "head"):
            self._skip += 1
        if tag == "blockquote":  # quoted history in HTML mail
            self._quoted += 1
        if tag in self._BREAKS:
            self.chunks.append("\n")

    def handle_endtag(self, tag: str) -> None:
        if tag in ("script", "style", "head"):
            self._skip = max(0, self._skip - 1)
        if tag == "blockquote":
            self._quoted = max(0, self._quoted - 1)

    def handle_data(self, data: str) -> None:
        if not (self._skip or self._quoted):
            self.chunks.append(data)


def _html_text(html: str) -> str:
    parser = _TextOfHtml()
    parser.feed(html)
    parser.close()
    return re.sub(r"\n\s*\n+", "\n\n", "".join(parser.chunks))


def reply_message(reply: Reply, settings: ChannelSettings) -> EmailMessage:
    """The reply as a message threaded under the customer's mail."""
    if not settings.smtp_from:
        raise DeliveryError("smtp_from is not configured")
    recipient = _address(reply.customer_id)
    if recipient is None:
        raise DeliveryError("the reply's customer id is not an e-mail address")
    message = EmailMessage()
    message["From"] = settings.smtp_from
    message["To"] = Address(addr_spec=recipient)
    subject = " ".join(reply.metadata.get(META_SUBJECT, "").split())  # no CR/LF injection
    re_prefixed = subject.lower().startswith(("re:", "回复:", "回复："))
    message["Subject"] = subject if re_prefixed else f"Re: {subject}".strip()
    _, from_address = parseaddr(settings.smtp_from)
    message["Message-ID"] = make_msgid(domain=from_address.partition("@")[2] or None)
    original = reply.metadata.get(META_MESSAGE_ID)
    if original:
        message["In-Reply-To"] = original
        message["References"] = reply.metadata.get(META_REFERENCES) or original
    message["Auto-Submitted"] = "auto-replied"  # RFC 3834: other robots must not answer
    message.set_content(reply.text)
    return message


async def send(reply: Reply, *, settings: ChannelSettings | None = None) -> str:
    """Send the reply over SMTP; returns its Message-ID."""
    settings = settings or channel_settings()
    message = reply_message(reply, settings)
    async for attempt in send_retrying(settings):
        with attempt:
            await _submit(message, settings)
    return str(message["Message-ID"])


async def _submit(message: EmailMessage, settings: ChannelSettings) -> None:
    if not settings.smtp_host:
        raise DeliveryError("smtp_host is not configured")
    password = settings.smtp_password.get_secret_value() if settings.smtp_password else None
    try:
        await aiosmtplib.send(
            message,
            hostname=settings.smtp_host,
            port=settings.smtp_port,
            username=settings.smtp_username or None,
            password=password,
            use_tls=settings.smtp_implicit_tls,
            start_tls=settings.smtp_starttls and not settings.smtp_implicit_tls,
            timeout=settings.http_timeout_s,
        )
    except aiosmtplib.SMTPConnectError as err:  # refused or timed out: nothing was sent
        raise ProviderUnavailable(f"smtp connect: {err}") from err
    except aiosmtplib.SMTPResponseException as err:
        if 400 <= err.code < 500:  # 4xx: try again later
            raise ProviderUnavailable(f"smtp {err.code}: {err.message[:200]}") from err
        raise DeliveryError(f"smtp {err.code}: {err.message[:200]}") from err
    except aiosmtplib.SMTPRecipientsRefused as err:
        raise DeliveryError(f"smtp refused the recipient: {err}") from err
    except (aiosmtplib.SMTPServerDisconnected, aiosmtplib.SMTPTimeoutError) as err:
        # Mid-conversation: the server may have taken the message already.
        raise ProviderUnavailable(f"smtp: {err}", maybe_delivered=True) from err


@contextmanager
def _mailbox(settings: ChannelSettings) -> Iterator[imaplib.IMAP4]:
    if not settings.imap_host or settings.imap_password is None:
        raise DeliveryError("imap_host / imap_password are not configured")
    kind = imaplib.IMAP4_SSL if settings.imap_ssl else imaplib.IMAP4
    imap = kind(settings.imap_host, settings.imap_port, timeout=IMAP_TIMEOUT_S)
    try:
        imap.login(settings.imap_username, settings.imap_password.get_secret_value())
        typ, _ = imap.select(settings.imap_mailbox)
        if typ != "OK":
            raise imaplib.IMAP4.error(f"cannot select {settings.imap_mailbox}")
        yield imap
    finally:
        try:
            imap.logout()
        except (imaplib.IMAP4.error, OSError):
            pass


def fetch_unseen(settings: ChannelSettings, limit: int = IMAP_BATCH) -> list[tuple[str, bytes]]:
    """(uid, raw message) of up to `limit` unseen mails, left unseen (BODY.PEEK)."""
    fetched: list[tuple[str, bytes]] = []
    with _mailbox(settings) as imap:
        _, data = imap.uid("SEARCH", "UNSEEN")
        uids = [u.decode() for u in (data[0] or b"").split()][:limit]
        for uid in uids:
            _, parts = imap.uid("FETCH", uid, "(BODY.PEEK[])")
            raw = next((p[1] for p in parts if isinstance(p, tuple)), None)
            if isinstance(raw, bytes):
                fetched.append((uid, raw))
    return fetched


def mark_seen(settings: ChannelSettings, uids: Sequence[str]) -> None:
    """Flag mails as seen so the next poll skips them."""
    if not uids:
        return
    with _mailbox(settings) as imap:
        imap.uid("STORE", ",".join(uids), "+FLAGS", "(\\Seen)")


async def watch_mailbox(
    *,
    tenant_for: TenantFor,
    settings: ChannelSettings | None = None,
    interval_s: float | None = None,
) -> AsyncIterator[InboundMessage]:
    """Poll IMAP forever, yielding each new mail's message.

    A batch is flagged seen only after the caller took all of it (it enqueued them),
    so a crash redelivers mails, which the pipeline dedupes by Message-ID.
    """
    settings = settings or channel_settings()
    interval = settings.imap_poll_s if interval_s is None else interval_s
    while True:
        try:
            batch = await asyncio.to_thread(fetch_unseen, settings)
        except (imaplib.IMAP4.error, OSError) as err:
            log.warning("imap poll failed", extra={"error": repr(err)[:300]})
            batch = []
        for _, raw in batch:
            event = _event_or_none(raw, tenant_for)
            if event is not None:
                yield event
        if batch:
            await _mark_seen_logged(settings, [uid for uid, _ in batch])
        await asyncio.sleep(interval)


async def _mark_seen_logged(settings: ChannelSettings, uids: list[str]) -> None:
    try:
        await asyncio.to_thread(mark_seen, settings, uids)
    except (imaplib.IMAP4.error, OSError) as err:
        # The mails come again next poll; the pipeline drops them as duplicates.
        log.warning("imap flagging failed", extra={"error": repr(err)[:300]})


def _event_or_none(raw: bytes, tenant_for: TenantFor) -> InboundMessage | None:
    try:
        return parse_email(raw, tenant_for=tenant_for)
    except (PayloadError, UnknownTenant) as err:
        log.warning("skipping mail", extra={"error": str(err)[:300]})
        return None


# --- the channel's parts ------------------------------------------------------------


def routes(intake: Intake) -> APIRouter:
    """`POST /webhooks/email`: raw RFC 822 mail from the relay, signed like callbacks."""
    router = APIRouter()

    @router.post("/webhooks/email", status_code=202)
    async def inbound_mail(
        request: Request,
        signature: Annotated[str | None, Header(alias=CLAWDESK_SIGNATURE_HEADER)] = None,
        timestamp: Annotated[str | None, Header(alias=CLAWDESK_TIMESTAMP_HEADER)] = None,
    ) -> dict[str, int]:
        """A customer's mail (enqueued), or a bounce of one of our replies (its delivery
        fails)."""
        settings = intake.settings(request)
        secret = settings.email_webhook_secret
        if secret is None:
            raise intake.disabled("email")
        body = await intake.read_body(request, settings.email_max_body_bytes, "email")
        with intake.rejecting("email"):
            verify_timestamped(
                secret.get_secret_value(),
                signature,
                timestamp,
                body,
                now=time.time(),
                max_skew_s=settings.webhook_max_skew_s,
            )
            tenants = tenant_resolver(settings, intake.default_tenant(request))
            bounce = parse_bounce(body, tenant_for=tenants)
            message = None if bounce else parse_email(body, tenant_for=tenants)
        messages = [message] if message else []
        receipts = [bounce] if bounce else []
        await intake.accept(request, "email", messages, receipts)
        return {"enqueued": len(messages), "receipts": len(receipts)}

    return router


def poll(
    app_settings: Any, settings: ChannelSettings, interval_s: float | None = None
) -> AsyncIterator[InboundMessage]:
    """New mail of the IMAP mailbox every `interval_s` (None: `imap_poll_s`), for
    `clawdesk poll email`."""
    if not settings.imap_host or settings.imap_password is None:
        raise NotConfigured("CLAWDESK_IMAP_HOST / CLAWDESK_IMAP_PASSWORD are not set")
    return watch_mailbox(
        tenant_for=tenant_resolver(settings, app_settings.default_tenant),
        settings=settings,
        interval_s=interval_s,
    )


CHANNEL = ChannelModule(
    name="email",
    sender=send,
    settings_loader=channel_settings,
    routes=routes,
    poll_source=PollSource(
        open=poll,
        help="Poll the IMAP mailbox and enqueue each new mail's text.",
        interval_setting="CLAWDESK_IMAP_POLL_S",
    ),
)
