"""The agent inbox in headless Chromium shows a customer's photo as a thumbnail (loaded
through its signed link from the real gateway process) and says why a file was refused."""

from __future__ import annotations

from typing import Any

import pytest

from clawdesk.settings import AppSettings
from clawdesk.storage import apikeys
from tests.gateway.test_inbox import seed
from tests.gateway.test_inbox_attachments import PHOTO, REFUSED, STORED, seed_files
from tests.integration.conftest import Pipeline
from tests.integration.test_inbox import wait_for
from tests.integration.test_web_chat import browser, gateway

__all__ = ["browser", "gateway"]

pytestmark = pytest.mark.integration


def test_the_inbox_shows_a_photo_thumbnail_and_a_refused_file(
    pipeline: Pipeline, gateway: str, browser: Any
) -> None:
    from selenium.webdriver.common.by import By

    seed(pipeline.database_url)
    # The gateway process reads files from its own data dir's object store.
    seed_files(
        pipeline.database_url,
        AppSettings(_env_file=None, data_dir=pipeline.root / "gateway"),  # type: ignore[call-arg]
    )
    key = apikeys.create_key(pipeline.database_url, "demo", "alice")

    browser.get(gateway + "inbox")
    browser.find_element(By.ID, "api-key").send_keys(key)
    browser.find_element(By.ID, "sign-in-button").click()
    item = '#conversations .conversation[data-id="conv-human"]'
    wait_for(browser, lambda d: d.find_elements(By.CSS_SELECTOR, item), timeout=30)
    browser.find_element(By.CSS_SELECTOR, item).click()

    thumb = f'#history .attachment[data-id="{STORED}"] img.thumb'
    wait_for(browser, lambda d: d.find_elements(By.CSS_SELECTOR, thumb), timeout=30)
    # Loaded, not a broken image: the signed link served the PNG's 4×3 pixels.
    size = wait_for(
        browser,
        lambda d: d.execute_script(
            "var i = document.querySelector(arguments[0]);"
            "return i && i.complete && i.naturalWidth ? [i.naturalWidth, i.naturalHeight] : null;",
            thumb,
        ),
        timeout=15,
    )
    assert size == [4, 3] and len(PHOTO) > 0
    refused = browser.find_element(By.CSS_SELECTOR, f'#history .attachment[data-id="{REFUSED}"]')
    assert refused.text == "file not kept: too large"
