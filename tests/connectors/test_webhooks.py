"""What every webhook route shares: size limits, disabled channels, broker outages."""

from __future__ import annotations

import json
import time
from collections.abc import AsyncIterator, Callable
from typing import Any

import pytest

from connectors.signatures import sign_timestamped
from tests.fakes.channels import telegram as tg
from tests.fakes.channels import wechat as wx
from tests.fakes.channels import whatsapp as wa

from .conftest import (
    EMAIL_SECRET,
    INAPP_KEYS,
    TELEGRAM_SECRET,
    WECHAT_TOKEN,
    WHATSAPP_SECRET,
    Hooks,
    make_channels,
)
from .test_email import raw_mail

# (name, build(body) -> httpx request kwargs, a valid body, the body's size limit setting)
Call = Callable[[bytes], dict[str, Any]]


def whatsapp(body: bytes) -> dict[str, Any]:
    sig = wa.meta_signature(WHATSAPP_SECRET, body)
    return {"url": "/webhooks/whatsapp", "headers": {"X-Hub-Signature-256": sig}}


def telegram(body: bytes) -> dict[str, Any]:
    return {
        "url": "/webhooks/telegram",
        "headers": {"X-Telegram-Bot-Api-Secret-Token": TELEGRAM_SECRET},
    }


def wechat(body: bytes) -> dict[str, Any]:
    return {"url": "/webhooks/wechat", "params": wx.signed_query(WECHAT_TOKEN)}


def email(body: bytes) -> dict[str, Any]:
    now = int(time.time())
    headers = {
        "X-Clawdesk-Timestamp": str(now),
        "X-Clawdesk-Signature": sign_timestamped(EMAIL_SECRET, now, body),
    }
    return {"url": "/webhooks/email", "headers": headers}


def inapp(body: bytes) -> dict[str, Any]:
    return {"url": "/api/inapp/messages", "headers": {"X-Api-Key": INAPP_KEYS["demo"]}}


INAPP_BODY = {"customer_id": "u", "text": "hi", "client_message_id": "m"}
ROUTES: list[tuple[str, Call, bytes, str]] = [
    ("whatsapp", whatsapp, wa.encode(wa.notification([wa.text_message("hi")])), "webhook"),
    ("telegram", telegram, json.dumps(tg.text_update("hi")).encode(), "webhook"),
    ("wechat", wechat, wx.text_xml("hi"), "webhook"),
    ("email", email, raw_mail(), "email"),
    ("inapp", inapp, json.dumps(INAPP_BODY).encode(), "webhook"),
]
IDS = [r[0] for r in ROUTES]


def padded(name: str, body: bytes, size: int) -> bytes:
    """The valid body grown past `size` bytes, still of its kind."""
    pad = "x" * size
    if name == "wechat":
        return wx.text_xml(pad)
    if name == "email":
        return raw_mail(pad)
    payload = json.loads(body)
    if name == "whatsapp":
        return wa.encode(wa.notification([wa.text_message(pad)]))
    if name == "telegram":
        payload["message"]["text"] = pad
    else:
        payload["text"] = pad
    return json.dumps(payload).encode()


@pytest.mark.parametrize(("name", "call", "body", "limit"), ROUTES, ids=IDS)
async def test_every_route_enqueues_a_valid_call(
    hooks: Hooks, name: str, call: Call, body: bytes, limit: str
) -> None:
    hooks.app.state.channel_settings = make_channels(wechat_reply_wait_s=0.01)

    response = await hooks.client.post(content=body, **call(body))

    assert response.status_code in (200, 202), response.text
    assert len(hooks.inbound()) == 1


@pytest.mark.parametrize(("name", "call", "body", "limit"), ROUTES, ids=IDS)
async def test_every_route_refuses_an_oversized_body_with_413(
    hooks: Hooks, name: str, call: Call, body: bytes, limit: str
) -> None:
    size = 64 * 1024 if limit == "webhook" else 256 * 1024  # see make_channels
    big = padded(name, body, size)

    response = await hooks.client.post(content=big, **call(big))

    assert response.status_code == 413
    assert hooks.producer.sent == []


@pytest.mark.parametrize(("name", "call", "body", "limit"), ROUTES, ids=IDS)
async def test_every_route_counts_a_chunked_body_without_content_length(
    hooks: Hooks, name: str, call: Call, body: bytes, limit: str
) -> None:
    big = padded(name, body, 300 * 1024)

    async def chunks() -> AsyncIterator[bytes]:
        for i in range(0, len(big), 16 * 1024):
            yield big[i : i + 16 * 1024]

    response = await hooks.client.post(content=chunks(), **call(big))

    assert response.status_code == 413
    assert hooks.producer.sent == []


@pytest.mark.parametrize(("name", "call", "body", "limit"), ROUTES, ids=IDS)
async def test_a_broker_outage_still_acknowledges_what_postgres_recorded(
    hooks: Hooks, name: str, call: Call, body: bytes, limit: str
) -> None:
    hooks.producer.fail = True

    response = await hooks.client.post(content=body, **call(body))

    # Recorded in the inbound log, so the re-driver enqueues it once the broker is back.
    assert response.status_code == 200 or response.status_code == 202
    assert len(hooks.pool.logged) >= 1
    assert hooks.producer.sent == []


@pytest.mark.parametrize(("name", "call", "body", "limit"), ROUTES, ids=IDS)
async def test_a_database_outage_is_503_and_nothing_enqueued(
    hooks: Hooks, name: str, call: Call, body: bytes, limit: str
) -> None:
    hooks.pool.down = True

    response = await hooks.client.post(content=body, **call(body))

    assert response.status_code == 503
    assert hooks.producer.sent == []


@pytest.mark.parametrize(
    ("name", "disabled"),
    [
        ("whatsapp", {"whatsapp_app_secret": None}),
        ("telegram", {"telegram_secret_token": None}),
        ("wechat", {"wechat_token": None}),
        ("email", {"email_webhook_secret": None}),
        ("inapp", {"inapp_api_keys": {}}),
    ],
)
async def test_an_unconfigured_channel_takes_nothing(
    hooks: Hooks, name: str, disabled: dict[str, Any]
) -> None:
    _, call, body, _ = next(r for r in ROUTES if r[0] == name)
    hooks.app.state.channel_settings = make_channels(**disabled)

    response = await hooks.client.post(content=body, **call(body))

    assert response.status_code in (401, 404)
    assert hooks.producer.sent == []
