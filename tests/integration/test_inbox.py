"""Human handoff end to end: the web chat and the agent inbox in headless Chromium, a real
worker on the real broker, Postgres, and the fake Zendesk over HTTP."""

from __future__ import annotations

import os
import shutil
from collections.abc import Callable
from typing import Any

import psycopg
import pytest

from clawdesk.storage import apikeys
from tests.fakes import zendesk
from tests.fakes.fixtures import Fakes, fake_servers, fakes
from tests.integration.conftest import Pipeline
from tests.integration.test_web_chat import bot_texts, browser, gateway

__all__ = ["browser", "fake_servers", "fakes", "gateway"]

pytestmark = pytest.mark.integration

AGENT_REPLY = "Hi, this is Alice from ClawShop. I have your order in front of me."


def wait_for(driver: Any, condition: Callable[[Any], Any], timeout: float = 60) -> Any:
    from selenium.webdriver.support.ui import WebDriverWait

    return WebDriverWait(driver, timeout, poll_frequency=0.2).until(condition)


def texts(driver: Any, selector: str) -> list[str]:
    """The texts of the matching elements, read in one go (the pages re-render lists)."""
    script = "return [...document.querySelectorAll(arguments[0])].map(e => e.textContent)"
    return list(driver.execute_script(script, selector))


def customer_says(driver: Any, text: str) -> None:
    from selenium.webdriver.common.by import By

    driver.find_element(By.ID, "input").send_keys(text)
    driver.find_element(By.ID, "send").click()


def stored(database_url: str, conversation: str, author: str) -> list[str]:
    with psycopg.connect(database_url) as conn:
        rows = conn.execute(
            "SELECT text FROM messages WHERE conversation_id = %s AND author = %s"
            ' ORDER BY "timestamp"',
            (conversation, author),
        ).fetchall()
    return [r[0] for r in rows]


def test_customer_gets_a_human_who_replies_from_the_inbox_then_hands_back(
    pipeline: Pipeline,
    gateway: str,
    browser: Any,
    fakes: Fakes,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from selenium.webdriver.common.by import By

    # The worker opens handoff tickets in the fake Zendesk (its env copies os.environ).
    monkeypatch.setenv("CLAWDESK_ZENDESK_URL", fakes.zendesk.base_url)
    monkeypatch.setenv("CLAWDESK_ZENDESK_EMAIL", zendesk.EMAIL)
    monkeypatch.setenv("CLAWDESK_ZENDESK_API_TOKEN", zendesk.API_TOKEN)
    pipeline.start_worker()
    key = apikeys.create_key(pipeline.database_url, "demo", "alice")

    # The customer asks for a human in the web chat; the bot says one is coming.
    browser.get(gateway)
    customer_tab = browser.current_window_handle
    wait_for(
        browser, lambda d: d.find_element(By.ID, "status").get_attribute("data-state") == "online"
    )
    customer_says(browser, "I want to talk to a human")
    wait_for(browser, lambda d: any("human agent" in t for t in bot_texts(d)), timeout=120)
    conversation = browser.execute_script("return localStorage.getItem('clawdesk.conversation_id')")

    # The agent signs in to the inbox and finds the conversation with its history.
    browser.switch_to.new_window("tab")
    agent_tab = browser.current_window_handle
    browser.get(gateway + "inbox")
    browser.find_element(By.ID, "api-key").send_keys(key)
    browser.find_element(By.ID, "sign-in-button").click()
    item = f'#conversations .conversation[data-id="{conversation}"]'
    wait_for(browser, lambda d: d.find_elements(By.CSS_SELECTOR, item))
    browser.find_element(By.CSS_SELECTOR, item).click()
    wait_for(
        browser, lambda d: "I want to talk to a human" in texts(d, "#history .msg.customer .bubble")
    )
    wait_for(browser, lambda d: any("human agent" in t for t in texts(d, "#history .msg.bot")))
    # The ticket reached Zendesk with the transcript, and the inbox says so.
    wait_for(browser, lambda d: "Zendesk ticket #" in d.find_element(By.ID, "ticket").text)
    [ticket] = fakes.zendesk.tickets.values()
    assert ticket["external_id"] == conversation
    assert "I want to talk to a human" in fakes.zendesk.comments[ticket["id"]][0]["body"]

    # The agent replies; the reply reaches the customer's page as an agent message.
    browser.find_element(By.ID, "reply-input").send_keys(AGENT_REPLY)
    browser.find_element(By.ID, "reply-send").click()
    wait_for(browser, lambda d: AGENT_REPLY in texts(d, "#history .msg.agent .bubble"))
    browser.switch_to.window(customer_tab)
    wait_for(browser, lambda d: AGENT_REPLY in texts(d, "#messages .msg.agent .bubble"))

    # While the human owns the conversation, the bot stays quiet.
    customer_says(browser, "Thanks! Can you also check the delivery address?")
    browser.switch_to.window(agent_tab)
    wait_for(
        browser,
        lambda d: any("delivery address" in t for t in texts(d, "#history .msg.customer .bubble")),
    )
    save_screenshot(browser, pipeline, "inbox.png")

    # The agent hands back; once the worker applied it, the conversation leaves the inbox.
    browser.find_element(By.ID, "hand-back").click()
    wait_for(browser, lambda d: not d.find_elements(By.CSS_SELECTOR, item))

    # The bot answers the customer's next question again.
    browser.switch_to.window(customer_tab)
    before = len(bot_texts(browser))
    customer_says(browser, "Which payment methods do you accept?")
    wait_for(browser, lambda d: len(bot_texts(d)) > before, timeout=120)
    answer = bot_texts(browser)[-1]
    assert "PayPal" in answer or "Visa" in answer, answer
    save_screenshot(browser, pipeline, "chat-after-hand-back.png")

    # Postgres: the agent's reply is an agent message, delivered once; the question asked
    # during the handoff got no bot answer (only the handoff notice and the last answer).
    assert stored(pipeline.database_url, conversation, "agent") == [AGENT_REPLY]
    bot = stored(pipeline.database_url, conversation, "bot")
    assert len(bot) == 2, bot
    with psycopg.connect(pipeline.database_url) as conn:
        deliveries = conn.execute(
            "SELECT d.status FROM deliveries d JOIN messages m ON m.id = d.reply_id"
            " WHERE m.author = 'agent' AND m.conversation_id = %s",
            (conversation,),
        ).fetchall()
    assert [d[0] for d in deliveries] in (["sent"], ["delivered"], ["read"])


def save_screenshot(browser: Any, pipeline: Pipeline, name: str) -> None:
    """Keep a screenshot with the test's logs (and where CLAWDESK_SCREENSHOT_DIR says)."""
    path = pipeline.root / name
    browser.save_screenshot(str(path))
    if os.environ.get("CLAWDESK_SCREENSHOT_DIR"):
        shutil.copy(path, os.path.join(os.environ["CLAWDESK_SCREENSHOT_DIR"], name))
