"""Images in headless Chromium against a real gateway process: the customer attaches a
photo with a caption in the widget and sees it in the thread, each message's delivery
state goes sending → sent → answered, a file that is not an image fails with the
gateway's reason and a retry button, an agent's image shows inline in the widget, and an
agent sends an image from the inbox page.

As in test_widget_reconnect, the test plays the pipeline's last stage itself (reads the
inbound topic, sends replies through the real dispatcher), so no worker has to start.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import psycopg
import pytest
from psycopg_pool import AsyncConnectionPool

from clawdesk.bench.harness import Harness, Received, wait_for
from clawdesk.bench.webhooks import ensure_topic
from clawdesk.settings import AppSettings, ChannelSettings
from clawdesk.storage import apikeys, attachments, db
from connectors.dispatcher import Dispatcher, Outcome
from schemas import Attachment, DeliveryReceipt, InboundMessage, Reply
from tests.fakes import media
from tests.gateway.test_inbox import seed
from tests.integration import test_web_chat
from tests.integration.conftest import Pipeline
from tests.integration.test_widget_reconnect import Gateway, reply_to, status_of, until
from topics import control_spec, inbound_spec, outbound_spec, reply_spec

pytestmark = pytest.mark.integration

browser = test_web_chat.browser  # the same headless Chromium fixture
PHOTO = media.png(6, 5)
AGENT_PHOTO = media.png(7, 2, rgb=(20, 120, 200))


@pytest.fixture()
async def gateway(pipeline: Pipeline) -> AsyncIterator[Gateway]:
    for spec in (inbound_spec, outbound_spec, reply_spec, control_spec):
        await ensure_topic(pipeline.bootstrap, spec.name(pipeline.settings), 4, 1)
    running = Gateway(pipeline)
    running.start()
    yield running
    running.stop()


@pytest.fixture()
async def pool(pipeline: Pipeline) -> AsyncIterator[AsyncConnectionPool]:
    pool = await db.open_pool(pipeline.database_url, max_size=2)
    yield pool
    await pool.close()


def delivery_of(driver: Any, index: int) -> str:
    """The delivery state the widget shows for the customer's `index`-th message."""
    return str(
        driver.execute_script(
            "var m = document.querySelectorAll('#messages .msg.customer')[arguments[0]];"
            "return m ? m.dataset.delivery + '|' + m.querySelector('.delivery').textContent : '';",
            index,
        )
    )


def image_size(driver: Any, selector: str) -> list[int] | None:
    """The natural size of a loaded image (None while it loads or if it is broken)."""
    size: list[int] | None = driver.execute_script(
        "var i = document.querySelector(arguments[0]);"
        "return i && i.complete && i.naturalWidth ? [i.naturalWidth, i.naturalHeight] : null;",
        selector,
    )
    return size


async def attach_and_send(driver: Any, path: Path, caption: str) -> None:
    from selenium.webdriver.common.by import By

    await asyncio.to_thread(driver.find_element(By.ID, "file").send_keys, str(path))
    if caption:
        await asyncio.to_thread(driver.find_element(By.ID, "input").send_keys, caption)
    await asyncio.to_thread(driver.find_element(By.ID, "send").click)


async def test_images_and_delivery_state_in_the_widget(
    pipeline: Pipeline,
    gateway: Gateway,
    browser: Any,
    pool: AsyncConnectionPool,
    tmp_path: Path,
) -> None:
    from selenium.webdriver.common.by import By

    photo = tmp_path / "charger.png"
    photo.write_bytes(PHOTO)
    fake = tmp_path / "invoice.png"  # a script named like a picture
    fake.write_bytes(b"#!/bin/sh\necho hi\n")

    async with Harness(pipeline.bootstrap, pipeline.settings) as harness:
        inbound: list[Received] = await harness.follow(inbound_spec)

        async def publish(reply: Reply) -> str:  # the web channel's send: the outbound topic
            await harness.send(outbound_spec, reply.conversation_id, reply.to_bytes())
            return reply.reply_id

        async def ignore(*_: object) -> None:
            return None

        async def no_receipts(_: DeliveryReceipt) -> None:
            return None

        channels = ChannelSettings(_env_file=None)  # type: ignore[call-arg]
        dispatcher = Dispatcher(pool, channels, publish, no_receipts, ignore)

        await asyncio.to_thread(browser.get, gateway.url + "/")
        await until(browser, lambda d: status_of(d) == "online", 30)

        # The customer attaches a photo and types a caption.
        await attach_and_send(browser, photo, "Is this the right charger?")
        await wait_for(inbound, lambda seen: len(seen) == 1, timeout=30)
        message = InboundMessage.from_bytes(inbound[0].value)
        assert message.text == "Is this the right charger?"
        (att,) = message.attachments
        assert att.content_type == "image/png" and att.size_bytes == len(PHOTO)
        await until(browser, lambda d: delivery_of(d, 0) == "sent|✓Sent", 15)
        mine = "#messages .msg.customer img.image"
        assert await until(browser, lambda d: image_size(d, mine), 15) == [6, 5]

        # The answer marks it answered.
        assert await dispatcher.deliver(reply_to(message, "Yes, that one fits.")) is Outcome.SENT
        await until(browser, lambda d: delivery_of(d, 0) == "answered|✓✓Answered", 30)

        # A script dressed as a PNG: refused with the gateway's reason, a retry button.
        await attach_and_send(browser, fake, "")
        await until(browser, lambda d: delivery_of(d, 1).startswith("failed|"), 30)
        failed = browser.find_elements(By.CSS_SELECTOR, "#messages .msg.customer")[1]
        assert "only images can be sent" in failed.find_element(By.CSS_SELECTOR, ".meta").text
        assert failed.find_element(By.CSS_SELECTOR, ".delivery .retry").text == "Retry"
        assert len(inbound) == 1  # nothing enqueued

        # An agent's image (stored by the inbox) shows inline in the widget.
        reply = await agent_image_reply(pipeline, message)
        assert await dispatcher.deliver(reply) is Outcome.SENT
        theirs = "#messages .msg.agent img.image"
        assert await until(browser, lambda d: image_size(d, theirs), 30) == [7, 2]

        # The history brings the image back after a reload (the agent's: the customer's
        # message is stored by ingest, which does not run here).
        await asyncio.to_thread(browser.refresh)
        assert await until(browser, lambda d: image_size(d, theirs), 30) == [7, 2]
        browser.save_screenshot(str(pipeline.root / "widget-media.png"))


async def agent_image_reply(pipeline: Pipeline, message: InboundMessage) -> Reply:
    """An agent's reply carrying an image, stored as the inbox stores one."""
    settings = AppSettings(_env_file=None, data_dir=pipeline.root / "gateway")  # type: ignore[call-arg]
    att_id = "att-" + "c" * 32
    key = f"demo/2026/03/02/{att_id}.png"
    await attachments.store_for(settings).put(key, AGENT_PHOTO, "image/png")
    reply = reply_to(message, "Here is the one you need.").model_copy(
        update={
            "reply_id": f"a-{message.event_id}",
            "author": "agent",
            "attachments": [
                Attachment(
                    kind="image",
                    provider_ref=f"upload:{att_id}",
                    attachment_id=att_id,
                    object_key=key,
                    content_type="image/png",
                    size_bytes=len(AGENT_PHOTO),
                )
            ],
        }
    )
    with psycopg.connect(pipeline.database_url) as conn:
        conn.execute(
            "INSERT INTO attachments (id, message_id, conversation_id, tenant_id, channel, kind,"
            " provider_ref, object_key, content_type, size_bytes)"
            " VALUES (%s, %s, %s, 'demo', 'web', 'image', %s, %s, 'image/png', %s)",
            (
                att_id,
                reply.reply_id,
                reply.conversation_id,
                f"upload:{att_id}",
                key,
                len(AGENT_PHOTO),
            ),
        )
    return reply


async def test_an_agent_sends_an_image_from_the_inbox_page(
    pipeline: Pipeline, gateway: Gateway, browser: Any, tmp_path: Path
) -> None:
    from selenium.webdriver.common.by import By

    from tests.integration.test_inbox import wait_for as wait_in

    seed(pipeline.database_url)
    key = apikeys.create_key(pipeline.database_url, "demo", "alice")
    label = tmp_path / "label.png"
    label.write_bytes(AGENT_PHOTO)

    async with Harness(pipeline.bootstrap, pipeline.settings) as harness:
        replies: list[Received] = await harness.follow(reply_spec)

        await asyncio.to_thread(browser.get, gateway.url + "/inbox")
        browser.find_element(By.ID, "api-key").send_keys(key)
        browser.find_element(By.ID, "sign-in-button").click()
        item = '#conversations .conversation[data-id="conv-human"]'
        await asyncio.to_thread(
            wait_in, browser, lambda d: d.find_elements(By.CSS_SELECTOR, item), 30
        )
        browser.find_element(By.CSS_SELECTOR, item).click()
        await asyncio.to_thread(
            wait_in, browser, lambda d: d.find_element(By.ID, "composer").is_displayed(), 30
        )
        browser.find_element(By.ID, "reply-image").send_keys(str(label))
        browser.find_element(By.ID, "reply-input").send_keys("Your return label")
        browser.find_element(By.ID, "reply-send").click()

        await wait_for(replies, lambda seen: len(seen) == 1, timeout=30)
        reply = Reply.from_bytes(replies[0].value)
        assert reply.author == "agent" and reply.text == "Your return label"
        (att,) = reply.attachments
        thumb = f'#history .attachment[data-id="{att.attachment_id}"] img.thumb'
        size = await asyncio.to_thread(wait_in, browser, lambda d: image_size(d, thumb), 30)
        assert size == [7, 2]
