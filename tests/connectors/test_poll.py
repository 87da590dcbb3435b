"""`clawdesk poll telegram|email` against the fake Bot API and the fake IMAP server, on
the real broker: each polled message lands on the inbound topic as a webhook's would."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import uuid
from collections.abc import AsyncIterator

import pytest
from aiokafka import AIOKafkaConsumer

from connectors.poll import forward
from schemas import Channel, InboundMessage
from tests.fakes.channels.mail import Mailbox, imap_server
from tests.fakes.channels.server import serve
from tests.fakes.channels.telegram import FakeBotApi, sticker_update, text_update

from .conftest import TELEGRAM_TOKEN
from .test_email import raw_mail

pytestmark = pytest.mark.integration


def run_poll(channel: str, bootstrap: str, prefix: str, extra: dict[str, str]) -> str:
    """Run `clawdesk poll <channel> --max-messages 2` to its end; its stderr."""
    env = {
        **os.environ,
        "KAFKA_BOOTSTRAP_SERVERS": bootstrap,
        "CLAWDESK_TOPIC_PREFIX": prefix,
        "CLAWDESK_DEFAULT_TENANT": "demo",
        **extra,
    }
    done = subprocess.run(
        [sys.executable, "-m", "clawdesk.cli", "poll", channel, "--max-messages", "2"],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    return done.stderr


async def inbound(bootstrap: str, prefix: str, n: int) -> list[InboundMessage]:
    consumer = AIOKafkaConsumer(
        f"{prefix}.inbound",
        bootstrap_servers=bootstrap,
        group_id=None,
        auto_offset_reset="earliest",
    )
    await consumer.start()
    found: list[InboundMessage] = []
    try:
        async with asyncio.timeout(20):
            while len(found) < n:
                for records in (await consumer.getmany(timeout_ms=200)).values():
                    found.extend(InboundMessage.from_bytes(r.value or b"") for r in records)
    finally:
        await consumer.stop()
    return found


async def test_poll_telegram_enqueues_text_updates(broker: str) -> None:
    fake = FakeBotApi(TELEGRAM_TOKEN)
    fake.updates = [
        text_update("where is my order?", update_id=70, message_id=1),
        sticker_update(update_id=71),
        text_update("退货政策是什么?", update_id=72, message_id=2),
    ]
    prefix = f"poll{uuid.uuid4().hex[:8]}"
    with serve(fake.app) as base:
        extra = {
            "CLAWDESK_TELEGRAM_BOT_TOKEN": TELEGRAM_TOKEN,
            "CLAWDESK_TELEGRAM_API_BASE": base,
            "CLAWDESK_TELEGRAM_POLL_TIMEOUT_S": "1",
        }
        stderr = await asyncio.to_thread(run_poll, "telegram", broker, prefix, extra)

    assert "enqueued 2 messages" in stderr
    messages = await inbound(broker, prefix, 2)
    # One chat, one conversation, one partition: in the order they were written.
    assert [m.text for m in messages] == ["where is my order?", "退货政策是什么?"]
    assert {m.channel for m in messages} == {Channel.TELEGRAM}
    assert {m.channel_message_id for m in messages} == {"4242:1", "4242:2"}


async def test_poll_email_enqueues_each_new_mail(broker: str) -> None:
    mailbox = Mailbox("support@shop.example", "imap-pass")
    mailbox.deliver(raw_mail("Where is my parcel?", message_id="<a1@customer.example>"))
    mailbox.deliver(raw_mail("我的订单到哪了？", message_id="<a2@customer.example>"))
    prefix = f"poll{uuid.uuid4().hex[:8]}"
    with imap_server(mailbox) as (host, port):
        extra = {
            "CLAWDESK_IMAP_HOST": host,
            "CLAWDESK_IMAP_PORT": str(port),
            "CLAWDESK_IMAP_SSL": "false",
            "CLAWDESK_IMAP_USERNAME": mailbox.username,
            "CLAWDESK_IMAP_PASSWORD": mailbox.password,
        }
        await asyncio.to_thread(run_poll, "email", broker, prefix, extra)

    messages = await inbound(broker, prefix, 2)
    assert sorted(m.text for m in messages) == sorted(["Where is my parcel?", "我的订单到哪了？"])
    assert {m.channel for m in messages} == {Channel.EMAIL}


async def test_forward_retries_a_message_until_the_broker_takes_it() -> None:
    from aiokafka.errors import KafkaConnectionError

    taken: list[str] = []
    failures = iter([True, True, False, False])

    async def enqueue(message: InboundMessage) -> None:
        if next(failures):
            raise KafkaConnectionError("broker down")
        taken.append(message.text)

    async def source() -> AsyncIterator[InboundMessage]:
        for text in ("one", "two"):
            yield InboundMessage(
                conversation_id="c",
                tenant_id="demo",
                channel=Channel.TELEGRAM,
                channel_message_id=text,
                customer_id="u",
                text=text,
            )

    import connectors.poll as poll

    poll.BROKER_RETRY_S = 0.01
    assert await forward(source(), enqueue) == 2
    assert taken == ["one", "two"]
