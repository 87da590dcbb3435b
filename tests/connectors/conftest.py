"""The gateway with the webhook routes, on fakes of the broker and Postgres, and the
channel settings every connector test shares."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass

import httpx
import pytest
from fastapi import FastAPI
from pydantic import SecretStr

from clawdesk.gateway import create_app
from clawdesk.settings import AppSettings
from connectors.config import ChannelSettings
from schemas import DeliveryReceipt, InboundMessage
from tests.gateway.conftest import TOKEN_SECRET
from tests.gateway.fakes import FakeConsumer, FakePool, FakeProducer
from topics import inbound_spec, receipt_spec

WHATSAPP_SECRET = "meta-app-secret"
WHATSAPP_VERIFY = "verify-me"
WHATSAPP_TOKEN = "EAAG-token"
TELEGRAM_TOKEN = "123456:ABC-DEF"
TELEGRAM_SECRET = "tg-secret_token-1"
WECHAT_TOKEN = "wechat-token"
WECHAT_APPID = "wx1234567890abcdef"
WECHAT_SECRET = "wechat-app-secret"
EMAIL_SECRET = "mail-relay-secret"
INAPP_KEYS = {"demo": "key-demo", "acme": "key-acme", "ghost": "key-ghost"}
INAPP_SECRET = "inapp-callback-secret"


def make_channels(**overrides: object) -> ChannelSettings:
    """Every channel enabled with test secrets; no .env is read."""
    values: dict[str, object] = {
        "whatsapp_app_secret": SecretStr(WHATSAPP_SECRET),
        "whatsapp_verify_token": SecretStr(WHATSAPP_VERIFY),
        "whatsapp_token": SecretStr(WHATSAPP_TOKEN),
        "whatsapp_phone_number_id": "106540352242922",
        "telegram_bot_token": SecretStr(TELEGRAM_TOKEN),
        "telegram_secret_token": SecretStr(TELEGRAM_SECRET),
        "wechat_token": SecretStr(WECHAT_TOKEN),
        "wechat_appid": WECHAT_APPID,
        "wechat_secret": SecretStr(WECHAT_SECRET),
        "wechat_reply_wait_s": 0.5,
        "email_webhook_secret": SecretStr(EMAIL_SECRET),
        "smtp_from": "Support <support@shop.example>",
        "smtp_starttls": False,
        "inapp_api_keys": {k: SecretStr(v) for k, v in INAPP_KEYS.items()},
        "inapp_webhook_secret": SecretStr(INAPP_SECRET),
        "webhook_max_body_bytes": 64 * 1024,
        "email_max_body_bytes": 256 * 1024,
        "http_timeout_s": 3.0,
    }
    values.update(overrides)
    return ChannelSettings(_env_file=None, **values)  # type: ignore[arg-type,call-arg]


@dataclass
class Hooks:
    """The gateway app under test, its client, and the fakes behind it."""

    app: FastAPI
    client: httpx.AsyncClient
    settings: AppSettings
    producer: FakeProducer
    pool: FakePool
    consumer: FakeConsumer

    def inbound(self) -> list[InboundMessage]:
        topic = inbound_spec.name(self.settings)
        return [
            InboundMessage.from_bytes(s.value or b"")
            for s in self.producer.sent
            if s.topic == topic
        ]

    def receipts(self) -> list[DeliveryReceipt]:
        topic = receipt_spec.name(self.settings)
        return [
            DeliveryReceipt.from_bytes(s.value or b"")
            for s in self.producer.sent
            if s.topic == topic
        ]


def gateway_app(
    channels: ChannelSettings,
) -> tuple[FastAPI, AppSettings, FakeProducer, FakePool, FakeConsumer]:
    settings = AppSettings(
        _env_file=None,  # type: ignore[call-arg]
        topic_prefix="test",
        default_tenant="demo",
        web_token_secret=TOKEN_SECRET,  # type: ignore[arg-type]
    )
    producer, pool, consumer = FakeProducer(), FakePool(tenants={"demo", "acme"}), FakeConsumer()
    app = create_app(
        settings,
        bootstrap_servers="unused:9092",
        database_url="postgresql://unused",
        producer=producer,
        pool=pool,  # type: ignore[arg-type]
        reply_consumer=consumer,
        redrive=False,  # its queries run against real Postgres in tests/gateway/test_intake.py
    )
    app.state.channel_settings = channels
    app.state.rate_limiter = None  # the rate-limit tests set their own (real Redis)
    return app, settings, producer, pool, consumer


@pytest.fixture
def channels() -> ChannelSettings:
    return make_channels()


@asynccontextmanager
async def open_hooks(channels: ChannelSettings) -> AsyncIterator[Hooks]:
    """The gateway app running (lifespan included) with a client on it."""
    app, settings, producer, pool, consumer = gateway_app(channels)
    # ASGITransport does not run the lifespan, which builds the gateway's state.
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://gateway") as client:
            yield Hooks(app, client, settings, producer, pool, consumer)


@pytest.fixture
async def hooks(channels: ChannelSettings) -> AsyncIterator[Hooks]:
    async with open_hooks(channels) as running:
        yield running


FUZZ_COUNTS: dict[str, int] = {}


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    """Say how many malformed bodies the fuzz tests sent (they pass silently otherwise)."""
    if FUZZ_COUNTS:
        total = sum(FUZZ_COUNTS.values())
        per = ", ".join(f"{name} {n}" for name, n in sorted(FUZZ_COUNTS.items()))
        terminalreporter.write_line(
            f"webhook fuzz: {total} malformed or forged requests ({per}); no 5xx, nothing enqueued"
        )
