"""The chat page names the tenant from its profile (configuration): the page config
endpoint and the page title; the demo tenant keeps ClawShop (its packaged profile)."""

from __future__ import annotations

import pytest

from tests.fakes.tenants import acme_tenant

from .conftest import Gateway

__all__ = ["acme_tenant"]
pytestmark = pytest.mark.usefixtures("acme_tenant")


def test_the_page_config_names_the_tenant(gateway: Gateway) -> None:
    profile = gateway.client.get("/api/web/profile", params={"tenant": "acme"}).json()
    assert profile["title"] == {"en": "Acme Help", "zh": "Acme 帮助"}
    assert profile["welcome"]["en"] == "Welcome to Acme Outfitters! Ask about your gear."

    page = gateway.client.get("/", params={"tenant": "acme"}).text
    assert "<title>Acme Help</title>" in page and "ClawShop" not in page

    demo = gateway.client.get("/api/web/profile").json()  # the default tenant
    assert demo["display_name"] == "ClawShop"
    assert demo["title"]["en"] == "ClawShop Support"
