"""WhatsApp status webhooks against a real Postgres: the status the provider reports is
the one stored on the reply, shown by the API, and put on the receipts topic; and the
webhooks' rate limits in a real Redis."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator

import httpx
import pytest
from psycopg_pool import AsyncConnectionPool

from clawdesk.gateway import create_app
from clawdesk.gateway.limits import RateLimiter
from clawdesk.settings import AppSettings
from clawdesk.storage import db
from connectors import deliveries
from schemas import Channel, DeliveryStatus, Reply, utc_now
from tests.fakes.channels.whatsapp import (
    CUSTOMER,
    PHONE_NUMBER_ID,
    encode,
    meta_signature,
    notification,
    status,
    text_message,
)
from tests.gateway.conftest import TOKEN_SECRET, auth
from tests.gateway.fakes import FakeConsumer, FakeProducer

from .conftest import INAPP_KEYS, WHATSAPP_SECRET, Hooks, make_channels

CONVERSATION = f"whatsapp:{PHONE_NUMBER_ID}:{CUSTOMER}"


@pytest.fixture
async def pool(database_url: str) -> AsyncIterator[AsyncConnectionPool]:
    pool = await db.open_pool(database_url, max_size=4)
    yield pool
    await pool.close()


@pytest.fixture
async def hooks(pool: AsyncConnectionPool) -> AsyncIterator[Hooks]:
    """The gateway on a real Postgres (the broker is a fake that keeps what it is sent)."""
    settings = AppSettings(
        _env_file=None,  # type: ignore[call-arg]
        topic_prefix="test",
        default_tenant="demo",
        web_token_secret=TOKEN_SECRET,  # type: ignore[arg-type]
    )
    producer, consumer = FakeProducer(), FakeConsumer()
    app = create_app(
        settings,
        bootstrap_servers="unused:9092",
        database_url="postgresql://unused",
        producer=producer,
        pool=pool,
        reply_consumer=consumer,
    )
    app.state.channel_settings = make_channels()
    app.state.rate_limiter = None
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://gateway") as client:
            yield Hooks(app, client, settings, producer, None, consumer)  # type: ignore[arg-type]


async def sent_reply(pool: AsyncConnectionPool, wamid: str = "wamid.OUT1") -> Reply:
    """A reply the dispatcher has sent: claimed, then recorded with the provider's id."""
    reply = Reply(
        conversation_id=CONVERSATION,
        tenant_id="demo",
        channel=Channel.WHATSAPP,
        reply_id=f"r-{uuid.uuid4().hex[:8]}",
        in_reply_to="e-1",
        customer_id=CUSTOMER,
        text="Your order ships today.",
        language="en",
        intent="order_status",
        confidence=0.9,
        received_at=utc_now(),
    )
    await deliveries.claim(pool, reply, lease_s=30)
    await db.record_sent(pool, reply, DeliveryStatus.SENT, wamid)
    return reply


async def post_statuses(hooks: Hooks, *statuses: dict) -> httpx.Response:
    body = encode(notification(statuses=list(statuses)))
    headers = {"X-Hub-Signature-256": meta_signature(WHATSAPP_SECRET, body)}
    return await hooks.client.post("/webhooks/whatsapp", content=body, headers=headers)


async def test_provider_statuses_are_stored_and_listed_per_message(
    hooks: Hooks, pool: AsyncConnectionPool
) -> None:
    reply = await sent_reply(pool)

    response = await post_statuses(
        hooks, status("delivered", callback=reply.reply_id), status("read", callback=None)
    )

    assert response.status_code == 200
    # The second status named only the wamid; the receipt names our reply all the same.
    assert [(r.reply_id, r.status) for r in hooks.receipts()] == [
        (reply.reply_id, DeliveryStatus.DELIVERED),
        (reply.reply_id, DeliveryStatus.READ),
    ]
    listed = await hooks.client.get(
        f"/api/web/conversations/{CONVERSATION}/deliveries", headers=auth(CONVERSATION)
    )
    [delivery] = listed.json()
    assert delivery["reply_id"] == reply.reply_id
    assert delivery["status"] == "read"
    assert delivery["provider_message_id"] == "wamid.OUT1"
    assert [s["status"] for s in delivery["history"]] == [
        "queued",
        "sending",
        "sent",
        "delivered",
        "read",
    ]
    one = await hooks.client.get(
        f"/api/web/conversations/{CONVERSATION}/deliveries/{reply.reply_id}",
        headers=auth(CONVERSATION),
    )
    assert one.json()["status"] == "read"


async def test_a_status_arriving_late_does_not_move_the_status_back(
    hooks: Hooks, pool: AsyncConnectionPool
) -> None:
    reply = await sent_reply(pool)

    await post_statuses(hooks, status("read", callback=reply.reply_id))
    await post_statuses(hooks, status("delivered", callback=reply.reply_id))

    [delivery] = await deliveries.conversation_deliveries(pool, CONVERSATION)
    assert delivery.status == "read"


async def test_a_failed_status_after_sent_is_what_the_customer_sees(
    hooks: Hooks, pool: AsyncConnectionPool
) -> None:
    reply = await sent_reply(pool)

    await post_statuses(hooks, status("failed", callback=reply.reply_id))

    one = await hooks.client.get(
        f"/api/web/conversations/{CONVERSATION}/deliveries/{reply.reply_id}",
        headers=auth(CONVERSATION),
    )
    assert one.json()["status"] == "failed"
    assert "131047" in one.json()["detail"]


async def test_a_status_of_a_message_that_is_not_ours_changes_nothing(
    hooks: Hooks, pool: AsyncConnectionPool
) -> None:
    reply = await sent_reply(pool)

    response = await post_statuses(hooks, status("read", message_id="wamid.ELSE", callback=None))

    assert response.status_code == 200
    [delivery] = await deliveries.conversation_deliveries(pool, CONVERSATION)
    assert delivery.status == "sent" and delivery.reply_id == reply.reply_id


async def test_an_unknown_reply_is_404_and_inapp_lists_only_its_tenants(hooks: Hooks) -> None:
    missing = await hooks.client.get(
        f"/api/web/conversations/{CONVERSATION}/deliveries/r-none", headers=auth(CONVERSATION)
    )
    foreign = await hooks.client.get(
        f"/api/inapp/conversations/{CONVERSATION}/deliveries",
        headers={"X-Api-Key": INAPP_KEYS["demo"]},
    )

    assert missing.status_code == 404
    assert foreign.status_code == 404


async def test_a_customer_over_the_limit_gets_429_from_the_webhook(
    hooks: Hooks, redis_url: str
) -> None:
    base = redis_url.rsplit("/", 1)[0] if redis_url.count("/") > 2 else redis_url
    hooks.app.state.rate_limiter = RateLimiter(
        f"{base}/14", customer="1/minute", tenant="100/minute", key_prefix=f"t:{uuid.uuid4()}"
    )
    bodies = [encode(notification([text_message("hi", message_id=f"wamid.IN{n}")])) for n in (1, 2)]

    answers = [
        await hooks.client.post(
            "/webhooks/whatsapp",
            content=body,
            headers={"X-Hub-Signature-256": meta_signature(WHATSAPP_SECRET, body)},
        )
        for body in bodies
    ]

    assert [a.status_code for a in answers] == [200, 429]
    assert answers[1].json()["code"] == "rate_limited"
    assert int(answers[1].headers["Retry-After"]) >= 1
    assert len(hooks.inbound()) == 1  # the refused message was not enqueued


BOUNCE = b"""From: MAILER-DAEMON@mx.shop.example
To: support@shop.example
Subject: Undelivered Mail Returned to Sender
Auto-Submitted: auto-replied
MIME-Version: 1.0
Content-Type: multipart/report; report-type=delivery-status; boundary="B"

--B
Content-Type: text/plain

Your message could not be delivered.
--B
Content-Type: message/delivery-status

Reporting-MTA: dns; mx.shop.example

Final-Recipient: rfc822; gone@customer.example
Action: failed
Status: 5.1.1
Diagnostic-Code: smtp; 550 5.1.1 user unknown

--B
Content-Type: text/rfc822-headers

From: Support <support@shop.example>
To: gone@customer.example
Subject: Re: Order 1234
Message-ID: <reply-1@shop.example>
In-Reply-To: <CAF1@mail.example>
References: <CAF1@mail.example>

--B--
""".replace(b"\n", b"\r\n")


async def test_a_bounce_marks_the_email_reply_failed(
    hooks: Hooks, pool: AsyncConnectionPool
) -> None:
    from connectors import email as mail

    from .test_email import signed

    conversation = mail.conversation_id("<CAF1@mail.example>")
    reply = Reply(
        conversation_id=conversation,
        tenant_id="demo",
        channel=Channel.EMAIL,
        reply_id=f"r-{uuid.uuid4().hex[:8]}",
        in_reply_to="e-1",
        customer_id="gone@customer.example",
        text="It ships today.",
        language="en",
        intent="order_status",
        confidence=0.9,
        received_at=utc_now(),
    )
    await deliveries.claim(pool, reply, lease_s=30)
    await db.record_sent(pool, reply, DeliveryStatus.SENT, "<reply-1@shop.example>")

    response = await hooks.client.post("/webhooks/email", content=BOUNCE, headers=signed(BOUNCE))

    assert response.status_code == 202
    assert response.json() == {"enqueued": 0, "receipts": 1}
    assert hooks.inbound() == []  # a bounce is never answered
    [receipt] = hooks.receipts()
    assert (receipt.reply_id, receipt.status) == (reply.reply_id, DeliveryStatus.FAILED)
    [delivery] = await deliveries.conversation_deliveries(pool, conversation)
    assert delivery.status == "failed"
    assert "5.1.1" in delivery.detail
