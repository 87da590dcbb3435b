"""Gateway apps wired to fakes of the broker and Postgres."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient

from clawdesk.gateway import create_app
from clawdesk.gateway.tokens import ConversationTokens
from clawdesk.settings import AppSettings

from .fakes import FakeConsumer, FakePool, FakeProducer

# The gateway's web token secret in these tests (none is generated into a data dir).
TOKEN_SECRET = "test-web-token-secret-0123456789abcdef"
TOKENS = ConversationTokens(TOKEN_SECRET.encode())


def auth(conversation_id: str, tenant_id: str = "demo") -> dict[str, str]:
    """The header that opens the tenant's conversation `conversation_id`."""
    return {"Authorization": f"Bearer {TOKENS.issue(tenant_id, conversation_id)}"}


@dataclass
class Gateway:
    app: FastAPI
    client: TestClient
    settings: AppSettings
    producer: FakeProducer
    pool: FakePool
    consumer: FakeConsumer

    def token(self, conversation_id: str, tenant_id: str = "demo") -> str:
        """The token the gateway issues for the conversation."""
        return TOKENS.issue(tenant_id, conversation_id)


@pytest.fixture
def settings() -> AppSettings:
    # No .env: a developer's local file must not change what the tests see.
    return AppSettings(
        _env_file=None,  # type: ignore[call-arg]
        topic_prefix="test",
        default_tenant="demo",
        web_token_secret=TOKEN_SECRET,  # type: ignore[arg-type]
    )


@pytest.fixture
def fakes() -> tuple[FakeProducer, FakePool, FakeConsumer]:
    return FakeProducer(), FakePool(), FakeConsumer()


@pytest.fixture
def app(settings: AppSettings, fakes: tuple[FakeProducer, FakePool, FakeConsumer]) -> FastAPI:
    producer, pool, consumer = fakes
    app = create_app(
        settings,
        bootstrap_servers="unused:9092",
        database_url="postgresql://unused",
        producer=producer,
        pool=pool,  # type: ignore[arg-type]
        reply_consumer=consumer,
        redrive=False,  # the re-driver's queries run against real Postgres in its own tests
    )
    app.state.rate_limiter = None  # the rate-limit tests set their own (real Redis)
    return app


@pytest.fixture
def gateway(
    app: FastAPI,
    settings: AppSettings,
    fakes: tuple[FakeProducer, FakePool, FakeConsumer],
) -> Iterator[Gateway]:
    producer, pool, consumer = fakes
    # The context manager runs the lifespan, which builds the app's state.
    with TestClient(app) as client:
        yield Gateway(app, client, settings, producer, pool, consumer)
