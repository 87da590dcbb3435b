"""The web widget in headless Chromium: "did this help?" under the bot's answer (not under a
human agent's reply or a handoff notice), a click stored in Postgres and a second click
replacing it. The test sends the replies through the real dispatcher itself, as the
reconnect test does, so no NLU worker has to start."""

from __future__ import annotations

import asyncio
from typing import Any

import psycopg
import pytest
from psycopg_pool import AsyncConnectionPool

from clawdesk.bench.harness import Harness
from clawdesk.settings import ChannelSettings
from connectors.dispatcher import Dispatcher, Outcome
from schemas import DeliveryReceipt, Reply, TurnOutcome
from tests.integration import test_widget_reconnect as reconnect
from tests.integration.conftest import Pipeline
from topics import inbound_spec, outbound_spec

pytestmark = pytest.mark.integration

# The reconnect test's gateway process, Postgres pool and headless Chromium.
gateway = reconnect.gateway
pool = reconnect.pool
browser = reconnect.browser


def feedback_under(driver: Any) -> dict[str, int]:
    """Message text -> how many feedback buttons it has, for every reply shown (the
    widget's own notes, such as the welcome, have no reply id)."""
    from selenium.webdriver.common.by import By

    shown = {}
    for item in driver.find_elements(By.CSS_SELECTOR, "#messages .msg[data-id]:not(.customer)"):
        text = item.find_element(By.CSS_SELECTOR, ".bubble").text
        shown[text] = len(item.find_elements(By.CSS_SELECTOR, ".feedback-button"))
    return shown


def stored_feedback(url: str, reply_id: str) -> bool | None:
    with psycopg.connect(url) as conn:
        row = conn.execute(
            "SELECT helpful FROM reply_feedback WHERE reply_id = %s", (reply_id,)
        ).fetchone()
    return None if row is None else bool(row[0])


async def test_a_customer_rates_the_bots_answer(
    pipeline: Pipeline, gateway: reconnect.Gateway, browser: Any, pool: AsyncConnectionPool
) -> None:
    from selenium.webdriver.common.by import By

    async with Harness(pipeline.bootstrap, pipeline.settings) as harness:
        inbound = await harness.follow(inbound_spec)

        async def publish(reply: Reply) -> str:
            await harness.send(outbound_spec, reply.conversation_id, reply.to_bytes())
            return reply.reply_id

        async def ignore(*_: object) -> None:
            return None

        async def no_receipts(_: DeliveryReceipt) -> None:
            return None

        channels = ChannelSettings(_env_file=None)  # type: ignore[call-arg]
        dispatcher = Dispatcher(pool, channels, publish, no_receipts, ignore)
        await asyncio.to_thread(browser.get, gateway.url + "/")
        await reconnect.until(browser, lambda d: reconnect.status_of(d) == "online", 30)

        question = await reconnect.ask(browser, "How long does shipping take?", inbound)
        base = reconnect.reply_to(question, "Two to four days.")
        answer = base.model_copy(update={"outcome": TurnOutcome.KB_ANSWER})
        agent = base.model_copy(
            update={"reply_id": "r-agent-1", "text": "Hi, Anna here.", "author": "agent"}
        )
        notice = base.model_copy(
            update={"reply_id": "r-handoff-1", "text": "Connecting you.", "handoff": True}
        )
        for reply in (answer, agent, notice):
            assert await dispatcher.deliver(reply) is Outcome.SENT
        await reconnect.until(browser, lambda d: len(feedback_under(d)) == 3, 30)
        assert feedback_under(browser) == {
            "Two to four days.": 2,
            "Hi, Anna here.": 0,
            "Connecting you.": 0,
        }
        assert not browser.find_elements(By.CSS_SELECTOR, ".welcome .feedback-button")
        with psycopg.connect(pipeline.database_url) as conn:
            outcomes = conn.execute("SELECT reply_id, outcome FROM turn_outcomes").fetchall()
        assert outcomes == [(answer.reply_id, "kb_answer")]

        item = browser.find_element(By.CSS_SELECTOR, f'.msg[data-id="{answer.reply_id}"]')
        yes = item.find_element(By.CSS_SELECTOR, '.feedback-button[data-helpful="true"]')
        no = item.find_element(By.CSS_SELECTOR, '.feedback-button[data-helpful="false"]')
        assert yes.get_attribute("aria-label") == "Yes, this helped"
        await asyncio.to_thread(yes.click)
        await reconnect.until(
            browser, lambda d: "Thanks" in item.find_element(By.CSS_SELECTOR, ".feedback").text, 15
        )
        assert yes.get_attribute("aria-pressed") == "true"
        assert stored_feedback(pipeline.database_url, answer.reply_id) is True

        await asyncio.to_thread(no.click)  # changing one's mind replaces the vote
        await reconnect.until(
            browser, lambda d: stored_feedback(pipeline.database_url, answer.reply_id) is False, 15
        )
        assert (yes.get_attribute("aria-pressed"), no.get_attribute("aria-pressed")) == (
            "false",
            "true",
        )
