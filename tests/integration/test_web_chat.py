"""The web chat page in headless Chromium against the running system."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from collections.abc import Iterator

import pytest

from clawdesk.runtime.ports import free_port, wait_for_port
from clawdesk.runtime.stack import stop_process
from tests.integration.conftest import Pipeline

pytestmark = pytest.mark.integration


@pytest.fixture()
def gateway(pipeline: Pipeline) -> Iterator[str]:
    port = free_port()
    env = {**pipeline.env("gateway"), "CLAWDESK_GATEWAY_PORT": str(port)}
    log = open(pipeline.root / "gateway.log", "ab")
    proc = subprocess.Popen(
        [sys.executable, "-m", "clawdesk.cli", "gateway"],
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    wait_for_port("127.0.0.1", port, 30)
    yield f"http://127.0.0.1:{port}/"
    stop_process(proc)


@pytest.fixture()
def browser(tmp_path) -> Iterator[object]:
    if not shutil.which("chromedriver"):
        pytest.fail("chromedriver is missing: `make test` installs chromium and chromium-driver")
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = shutil.which("chromium") or "/usr/bin/chromium"
    for flag in (
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-background-networking",
        "--disable-dev-shm-usage",
        f"--user-data-dir={tmp_path / 'chrome'}",
        "--lang=en-US",
    ):
        options.add_argument(flag)
    driver = webdriver.Chrome(options=options, service=Service(shutil.which("chromedriver")))
    yield driver
    driver.quit()


def bot_texts(driver) -> list[str]:
    from selenium.webdriver.common.by import By

    return [e.text for e in driver.find_elements(By.CSS_SELECTOR, "#messages .msg.bot .bubble")]


def test_customer_asks_on_the_page_and_gets_a_grounded_answer(pipeline, gateway, browser):
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import WebDriverWait

    pipeline.start_worker()
    browser.get(gateway)
    box = WebDriverWait(browser, 30).until(lambda d: d.find_element(By.ID, "input"))
    WebDriverWait(browser, 30).until(
        lambda d: d.find_element(By.ID, "status").get_attribute("data-state") == "online"
    )
    before = len(bot_texts(browser))
    box.send_keys("Which payment methods do you accept?")
    browser.find_element(By.ID, "send").click()
    WebDriverWait(browser, 120).until(lambda d: len(bot_texts(d)) > before)
    answer = bot_texts(browser)[-1]
    assert "PayPal" in answer or "Visa" in answer, answer
    browser.save_screenshot(str(pipeline.root / "chat.png"))
    if os.environ.get("CLAWDESK_SCREENSHOT"):
        shutil.copy(pipeline.root / "chat.png", os.environ["CLAWDESK_SCREENSHOT"])

    browser.refresh()  # the history comes back from Postgres
    WebDriverWait(browser, 30).until(lambda d: answer in bot_texts(d))
