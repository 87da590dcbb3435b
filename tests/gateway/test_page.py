"""The web chat page and its script."""

from __future__ import annotations

from .conftest import Gateway


def test_index_serves_the_chat_page_with_the_widget_script(gateway: Gateway) -> None:
    response = gateway.client.get("/")

    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/html")
    assert '<script src="/web/widget.js"' in response.text
    assert "ClawShop" in response.text
    assert "default-src 'self'" in response.headers["content-security-policy"]


def test_widget_script_is_served(gateway: Gateway) -> None:
    response = gateway.client.get("/web/widget.js")

    assert response.status_code == 200
    assert "javascript" in response.headers["content-type"]
    assert "/api/web/messages" in response.text
    assert "new WebSocket(" in response.text
