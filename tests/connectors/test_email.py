"""The e-mail channel: quote stripping, threading, the signed inbound-mail webhook,
SMTP sending and IMAP polling."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterator
from email.message import EmailMessage

import pytest

from connectors import email as mail
from connectors.config import ChannelSettings, DeliveryError
from connectors.signatures import sign_timestamped
from schemas import Channel, InboundMessage, Reply, utc_now
from tests.fakes.channels.mail import Mailbox, Outbox, imap_server, smtp_server

from .conftest import EMAIL_SECRET, Hooks, make_channels

URL = "/webhooks/email"
SUPPORT = "support@shop.example"


def raw_mail(
    body: str = "Where is my order 1234?",
    *,
    message_id: str = "<CAF1@mail.example>",
    sender: str = "Ana Li <Ana.Li@Example.com>",
    to: str = SUPPORT,
    subject: str = "Order 1234",
    **headers: str,
) -> bytes:
    message = EmailMessage()
    message["From"] = sender
    message["To"] = to
    message["Subject"] = subject
    if message_id:
        message["Message-ID"] = message_id
    for name, value in headers.items():
        message[name.replace("_", "-")] = value
    message.set_content(body)
    return message.as_bytes()


def signed(body: bytes, *, at: int | None = None, secret: str = EMAIL_SECRET) -> dict[str, str]:
    timestamp = int(time.time()) if at is None else at
    return {
        "Content-Type": "message/rfc822",
        "X-Clawdesk-Timestamp": str(timestamp),
        "X-Clawdesk-Signature": sign_timestamped(secret, timestamp, body),
    }


# --- parsing ------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        (
            "Thanks, it arrived.\n\nOn Mon, Jan 1, 2024 at 10:00 AM Shop <s@x.com> wrote:\n"
            "> It ships tomorrow.\n",
            "Thanks, it arrived.",
        ),
        (
            "Still nothing.\nOn Mon, Jan 1, 2024 at 10:00 AM Shop Support <support@shop.example>\n"
            "wrote:\n> old",
            "Still nothing.",
        ),
        (
            "好的，谢谢！\n\n在 2024年1月1日 10:00，客服 <s@x.com> 写道：\n> 明天发货",
            "好的，谢谢！",
        ),
        ("See below\n-----Original Message-----\nFrom: a\nhello", "See below"),
        ("Yes please\n\nFrom: Shop <s@x.com>\nSent: Monday\nSubject: x", "Yes please"),
        ("inline\n> quoted line\nanswer", "inline\nanswer"),
        ("Body\n-- \nAna Li\nCEO", "Body"),
        (
            "On my order 1234 the lid is broken.\nOn Mon, Jan 1, 2024 Shop wrote:\n> x",
            "On my order 1234 the lid is broken.",
        ),
    ],
)
def test_quoted_history_and_signatures_are_stripped(text: str, expected: str) -> None:
    assert mail.strip_quoted(text) == expected


def test_replies_of_a_thread_share_the_conversation_of_its_first_mail() -> None:
    first = mail.parse_email(raw_mail(), tenant_for=lambda _: "demo")
    answer = mail.parse_email(
        raw_mail(
            "And when?",
            message_id="<CAF3@mail.example>",
            In_Reply_To="<bot-2@shop.example>",
            References="<CAF1@mail.example> <bot-2@shop.example>",
        ),
        tenant_for=lambda _: "demo",
    )

    assert first is not None and answer is not None
    assert first.conversation_id == answer.conversation_id
    assert first.conversation_id.startswith("email:")
    assert answer.metadata[mail.META_REFERENCES] == (
        "<CAF1@mail.example> <bot-2@shop.example> <CAF3@mail.example>"
    )


def test_html_only_mail_is_read_as_text_without_its_quote() -> None:
    message = EmailMessage()
    message["From"] = "a@b.example"
    message["To"] = SUPPORT
    message["Message-ID"] = "<h1@b.example>"
    message.set_content(
        "<html><body><p>Refund &amp; return?</p><blockquote>old stuff"
        "</blockquote><script>x()</script></body></html>",
        subtype="html",
    )

    parsed = mail.parse_email(message.as_bytes(), tenant_for=lambda _: "demo")

    assert parsed is not None
    assert parsed.text == "Refund & return?"


# --- the inbound-mail webhook ---------------------------------------------------------


async def test_a_signed_mail_is_enqueued(hooks: Hooks) -> None:
    body = raw_mail()

    response = await hooks.client.post(URL, content=body, headers=signed(body))

    assert response.status_code == 202
    assert response.json() == {"enqueued": 1, "receipts": 0}
    (message,) = hooks.inbound()
    assert message.channel is Channel.EMAIL
    assert message.customer_id == "ana.li@example.com"
    assert message.channel_message_id == "<CAF1@mail.example>"
    assert message.text == "Where is my order 1234?"
    assert message.metadata[mail.META_SUBJECT] == "Order 1234"


async def test_a_replayed_mail_with_an_old_timestamp_is_401(hooks: Hooks) -> None:
    body = raw_mail()
    old = int(time.time()) - 3600

    response = await hooks.client.post(URL, content=body, headers=signed(body, at=old))

    assert response.status_code == 401
    assert "timestamp" in response.json()["error"]
    assert hooks.producer.sent == []


@pytest.mark.parametrize("secret", ["wrong", ""])
async def test_a_bad_signature_is_401(hooks: Hooks, secret: str) -> None:
    body = raw_mail()

    response = await hooks.client.post(URL, content=body, headers=signed(body, secret=secret))

    assert response.status_code == 401
    assert hooks.producer.sent == []


async def test_unsigned_mail_is_401(hooks: Hooks) -> None:
    response = await hooks.client.post(URL, content=raw_mail())

    assert response.status_code == 401
    assert hooks.producer.sent == []


@pytest.mark.parametrize(
    "headers",
    [{"Auto_Submitted": "auto-replied"}, {"Precedence": "bulk"}, {"List_Id": "<l.example>"}],
)
async def test_automatic_mail_is_accepted_but_not_enqueued(hooks: Hooks, headers: dict) -> None:
    body = raw_mail(**headers)

    response = await hooks.client.post(URL, content=body, headers=signed(body))

    assert response.status_code == 202
    assert response.json() == {"enqueued": 0, "receipts": 0}
    assert hooks.producer.sent == []


@pytest.mark.parametrize("body", [raw_mail(sender="no address here"), b"\x00\xff garbage", b""])
async def test_mail_without_a_sender_is_400(hooks: Hooks, body: bytes) -> None:
    response = await hooks.client.post(URL, content=body, headers=signed(body))

    assert response.status_code == 400
    assert hooks.producer.sent == []


async def test_mail_to_an_address_no_tenant_has_is_404(hooks: Hooks) -> None:
    hooks.app.state.channel_settings = make_channels(email_tenants={"help@acme.example": "acme"})
    body = raw_mail()

    response = await hooks.client.post(URL, content=body, headers=signed(body))

    assert response.status_code == 404
    assert hooks.producer.sent == []


async def test_oversized_mail_is_413(hooks: Hooks) -> None:
    body = raw_mail("x" * 300_000)

    response = await hooks.client.post(URL, content=body, headers=signed(body))

    assert response.status_code == 413
    assert hooks.producer.sent == []


# --- SMTP ---------------------------------------------------------------------------


@pytest.fixture
def smtp() -> Iterator[tuple[Outbox, ChannelSettings]]:
    with smtp_server() as (host, port, outbox):
        yield outbox, make_channels(smtp_host=host, smtp_port=port)


def reply_to(message: InboundMessage, text: str = "It ships tomorrow.") -> Reply:
    return Reply(
        **message.lineage(),
        reply_id="r-1",
        in_reply_to=message.event_id,
        customer_id=message.customer_id,
        text=text,
        language="en",
        intent="order_status",
        confidence=0.9,
        received_at=utc_now(),
        metadata=message.metadata,
    )


def customer_mail() -> InboundMessage:
    parsed = mail.parse_email(
        raw_mail(References="<CAF0@mail.example>", In_Reply_To="<CAF0@mail.example>"),
        tenant_for=lambda _: "demo",
    )
    assert parsed is not None
    return parsed


async def test_send_threads_the_reply_under_the_customers_mail(
    smtp: tuple[Outbox, ChannelSettings],
) -> None:
    outbox, settings = smtp

    message_id = await mail.send(reply_to(customer_mail()), settings=settings)

    (sent,) = outbox.messages
    assert sent["Message-ID"] == message_id
    assert message_id.endswith("@shop.example>")
    assert sent["In-Reply-To"] == "<CAF1@mail.example>"
    assert sent["References"] == "<CAF0@mail.example> <CAF1@mail.example>"
    assert sent["Subject"] == "Re: Order 1234"
    assert sent["To"] == "ana.li@example.com"
    assert sent["Auto-Submitted"] == "auto-replied"
    assert sent.get_content().strip() == "It ships tomorrow."
    assert outbox.envelopes == [("support@shop.example", ["ana.li@example.com"])]


async def test_a_temporary_smtp_refusal_is_retried(smtp: tuple[Outbox, ChannelSettings]) -> None:
    outbox, settings = smtp
    outbox.refuse_next.append("451 4.3.0 try again later")

    await mail.send(reply_to(customer_mail()), settings=settings)

    assert len(outbox.messages) == 1


async def test_a_permanent_smtp_refusal_is_a_delivery_error(
    smtp: tuple[Outbox, ChannelSettings],
) -> None:
    outbox, settings = smtp
    outbox.refuse_next.append("550 5.1.1 no such user")

    with pytest.raises(DeliveryError, match="550"):
        await mail.send(reply_to(customer_mail()), settings=settings)
    assert outbox.messages == []


# --- IMAP ---------------------------------------------------------------------------


async def test_polling_yields_new_mail_and_flags_it_seen_after_it_was_taken() -> None:
    mailbox = Mailbox("support", "imap-pass")
    mailbox.deliver(raw_mail("first", message_id="<m1@x.example>"))
    mailbox.deliver(raw_mail("auto", message_id="<m2@x.example>", Auto_Submitted="auto-replied"))
    mailbox.deliver(raw_mail("second", message_id="<m3@x.example>"))
    with imap_server(mailbox) as (host, port):
        settings = make_channels(
            imap_host=host,
            imap_port=port,
            imap_ssl=False,
            imap_username="support",
            imap_password="imap-pass",
        )
        received: list[InboundMessage] = []
        seen_while_taking: list[set[int]] = []

        async def take(n: int) -> None:
            async for message in mail.watch_mailbox(
                tenant_for=lambda _: "demo", settings=settings, interval_s=0.05
            ):
                received.append(message)
                seen_while_taking.append(mailbox.seen())
                if len(received) == 2:
                    mailbox.deliver(raw_mail("third", message_id="<m4@x.example>"))
                if len(received) == n:
                    return

        await asyncio.wait_for(take(3), timeout=15)

    assert [m.text for m in received] == ["first", "second", "third"]
    assert seen_while_taking[:2] == [set(), set()]  # not flagged before the caller took them
    assert {1, 2, 3} <= seen_while_taking[2]  # the whole first batch, the auto-reply too


async def test_polling_survives_a_refused_login() -> None:
    mailbox = Mailbox("support", "imap-pass")
    mailbox.deliver(raw_mail("first"))
    with imap_server(mailbox) as (host, port):
        settings = make_channels(
            imap_host=host,
            imap_port=port,
            imap_ssl=False,
            imap_username="support",
            imap_password="wrong",
        )

        async def first() -> InboundMessage:
            async for message in mail.watch_mailbox(
                tenant_for=lambda _: "demo", settings=settings, interval_s=0.05
            ):
                return message
            raise AssertionError("the watcher ended")

        with pytest.raises(TimeoutError):
            await asyncio.wait_for(first(), timeout=0.5)
    assert mailbox.seen() == set()
