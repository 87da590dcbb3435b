"""The web widget in headless Chromium loses its socket (the gateway restarts) while a
reply is on its way, reconnects, and shows the reply the gateway replays from Postgres;
the typing indicator shows while the customer waits.

The test plays the pipeline's last stage itself: it reads the customer's message off the
inbound topic and sends the reply through the real dispatcher (claim, publish to the
outbound topic, record in Postgres), so no NLU worker has to start.
"""

from __future__ import annotations

import asyncio
import subprocess
import sys
from collections.abc import AsyncIterator, Callable
from typing import Any

import httpx
import pytest
from psycopg_pool import AsyncConnectionPool

from clawdesk.bench.harness import Harness, Received, wait_for
from clawdesk.bench.webhooks import ensure_topic
from clawdesk.runtime.ports import free_port, wait_for_port
from clawdesk.runtime.stack import stop_process
from clawdesk.settings import ChannelSettings
from clawdesk.storage import db
from connectors.dispatcher import Dispatcher, Outcome
from schemas import Channel, DeliveryReceipt, InboundMessage, Reply
from tests.integration import test_web_chat
from tests.integration.conftest import Pipeline
from topics import inbound_spec, outbound_spec

pytestmark = pytest.mark.integration

browser = test_web_chat.browser  # the same headless Chromium fixture


class Gateway:
    """A `clawdesk gateway` process that can be stopped and started on the same port."""

    def __init__(self, pipeline: Pipeline) -> None:
        self.pipeline = pipeline
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        env = {**self.pipeline.env("gateway"), "CLAWDESK_GATEWAY_PORT": str(self.port)}
        log = open(self.pipeline.root / "gateway.log", "ab")  # the child writes to it
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "clawdesk.cli", "gateway"],
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
        )
        wait_for_port("127.0.0.1", self.port, 30)

    def stop(self) -> None:
        if self.proc is not None:
            stop_process(self.proc)
            self.proc = None


@pytest.fixture()
async def gateway(pipeline: Pipeline) -> AsyncIterator[Gateway]:
    # The workers would create these; here nobody else does.
    for spec in (inbound_spec, outbound_spec):
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


async def until(driver: Any, condition: Callable[[Any], Any], timeout: float) -> Any:
    """Selenium's wait, off the event loop (the harness keeps reading topics meanwhile)."""
    from selenium.webdriver.support.ui import WebDriverWait

    return await asyncio.to_thread(WebDriverWait(driver, timeout).until, condition)


def bot_texts(driver: Any) -> list[str]:
    from selenium.webdriver.common.by import By

    return [e.text for e in driver.find_elements(By.CSS_SELECTOR, "#messages .msg.bot .bubble")]


def typing_shown(driver: Any) -> bool:
    from selenium.webdriver.common.by import By

    return bool(driver.find_element(By.ID, "typing").is_displayed())


def status_of(driver: Any) -> str:
    from selenium.webdriver.common.by import By

    return str(driver.find_element(By.ID, "status").get_attribute("data-state"))


async def ask(driver: Any, text: str, inbound: list[Received]) -> InboundMessage:
    """Type and send a question; the message as it reached the inbound topic."""
    from selenium.webdriver.common.by import By

    before = len(inbound)
    await asyncio.to_thread(driver.find_element(By.ID, "input").send_keys, text)
    await asyncio.to_thread(driver.find_element(By.ID, "send").click)
    await wait_for(inbound, lambda seen: len(seen) > before, timeout=30)
    return InboundMessage.from_bytes(inbound[before].value)


def reply_to(message: InboundMessage, text: str) -> Reply:
    return Reply(
        **message.lineage(),
        reply_id=f"r-{message.event_id}",
        in_reply_to=message.event_id,
        customer_id=message.customer_id,
        text=text,
        language="en",
        intent="faq",
        confidence=0.9,
        received_at=message.received_at,
    )


async def test_a_reply_sent_while_the_socket_was_down_is_replayed_on_reconnect(
    pipeline: Pipeline, gateway: Gateway, browser: Any, pool: AsyncConnectionPool
) -> None:
    from selenium.webdriver.common.by import By

    async with Harness(pipeline.bootstrap, pipeline.settings) as harness:
        inbound = await harness.follow(inbound_spec)

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

        first = await ask(browser, "How long does shipping take?", inbound)
        assert first.channel is Channel.WEB
        await until(browser, typing_shown, 5)  # waiting for the answer
        assert await dispatcher.deliver(reply_to(first, "Two to four days.")) is Outcome.SENT
        await until(browser, lambda d: "Two to four days." in bot_texts(d), 30)
        assert not typing_shown(browser)

        second = await ask(browser, "And to Germany?", inbound)
        await until(browser, typing_shown, 5)

        # The gateway goes away; the reply is sent while no socket can carry it.
        await asyncio.to_thread(gateway.stop)
        await until(browser, lambda d: status_of(d) == "offline", 15)
        late = reply_to(second, "Three to five days to Germany.")
        assert await dispatcher.deliver(late) is Outcome.SENT
        assert typing_shown(browser)  # still waiting, still saying so
        await asyncio.to_thread(gateway.start)

        await until(browser, lambda d: "Three to five days to Germany." in bot_texts(d), 60)
        assert status_of(browser) == "online"
        assert not typing_shown(browser)
        assert bot_texts(browser).count("Three to five days to Germany.") == 1
        async with httpx.AsyncClient() as client:
            metrics = (await client.get(f"{gateway.url}/metrics")).text
        assert 'clawdesk_gateway_replies_total{outcome="replayed"} 1.0' in metrics

        # The conversation and its token outlive the page (and the gateway restart above,
        # whose generated secret is kept in its data dir): a reload reads the history.
        stored = browser.execute_script(
            "return [localStorage.getItem('clawdesk.conversation_id'),"
            " localStorage.getItem('clawdesk.conversation_token')]"
        )
        assert stored[0] == first.conversation_id and stored[0].startswith("web-")
        await asyncio.to_thread(browser.refresh)
        await until(browser, lambda d: "Three to five days to Germany." in bot_texts(d), 30)

        # A token the gateway refuses (socket closed with 1008) starts a new conversation.
        browser.execute_script(
            "localStorage.setItem('clawdesk.conversation_token', 'v1.forged.demo')"
        )
        await asyncio.to_thread(browser.refresh)
        await until(
            browser,
            lambda d: (
                status_of(d) == "online"
                and d.execute_script("return localStorage.getItem('clawdesk.conversation_id')")
                != first.conversation_id
            ),
            30,
        )
        assert "Three to five days to Germany." not in bot_texts(browser)

        # The same page in Chinese.
        await asyncio.to_thread(browser.find_element(By.ID, "lang-toggle").click)
        assert browser.find_element(By.ID, "status").text == "7×24 小时在线"
        assert browser.find_element(By.ID, "send").text == "发送"
        browser.save_screenshot(str(pipeline.root / "reconnect.png"))
