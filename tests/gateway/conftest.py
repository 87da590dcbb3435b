"""Gateway apps wired to fakes of the broker and Postgres."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient

from clawdesk.gateway import create_app
from clawdesk.settings import AppSettings

from .fakes import FakeConsumer, FakePool, FakeProducer


@dataclass
class Gateway:
    app: FastAPI
    client: TestClient
    settings: AppSettings
    producer: FakeProducer
    pool: FakePool
    consumer: FakeConsumer


@pytest.fixture
def settings() -> AppSettings:
    # No .env: a developer's local file must not change what the tests see.
    return AppSettings(_env_file=None, topic_prefix="test", default_tenant="demo")  # type: ignore[call-arg]


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
