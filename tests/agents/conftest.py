"""Unit tests of agents with Faust's test_context(): no broker, every send mocked."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from unittest.mock import AsyncMock, MagicMock

import pytest

# The app reads its broker from settings at import; test_context never connects.
os.environ.setdefault("KAFKA_BOOTSTRAP_SERVERS", "127.0.0.1:9")


@pytest.fixture()
def test_app() -> Iterator[Any]:
    """The app with an in-memory table store, as the faust examples set it up."""
    from clawdesk.app import app

    app.finalize()
    app.conf.store = "memory://"
    app.flow_control.resume()
    yield app


@pytest.fixture()
def fake_services(tmp_path: Path) -> Iterator[Any]:
    """Services whose outside parts (Postgres) are mocks; their data dir (where dead
    letters Postgres refuses are spooled) is the test's own."""
    from clawdesk import services
    from clawdesk.settings import AppSettings

    pool = AsyncMock()
    # `async with pool.connection() as conn`: a connection whose every call is a mock.
    pool.connection = MagicMock()
    pool.connection.return_value.__aenter__.return_value = AsyncMock()
    svc = services.Services(
        settings=AppSettings(data_dir=tmp_path),
        pool=pool,
        kb=None,
        nlu=None,
        shop=None,
        cache=None,
    )
    services.install(svc)
    yield svc
