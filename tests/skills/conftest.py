"""Skills against the fake providers and a fresh Postgres database."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from typing import Any

import pytest
from psycopg_pool import AsyncConnectionPool

from clawdesk.integrations import Integrations, ProviderSettings
from clawdesk.skills import SkillContext
from clawdesk.storage import db
from tests.fakes.fixtures import fake_servers, fakes, provider_settings

__all__ = ["fake_servers", "fakes", "provider_settings"]


@pytest.fixture()
async def integrations(provider_settings: ProviderSettings) -> AsyncIterator[Integrations]:
    """Provider clients pointed at the fakes."""
    providers = Integrations(provider_settings)
    yield providers
    await providers.aclose()


@pytest.fixture()
def make_ctx(integrations: Integrations) -> Callable[..., SkillContext]:
    """A skill context for the demo tenant; keyword arguments override fields."""

    def make(**overrides: Any) -> SkillContext:
        fields: dict[str, Any] = {
            "tenant_id": "demo",
            "conversation_id": "conv-1",
            "customer_id": "web-visitor-1",
            "integrations": integrations,
        }
        return SkillContext(**{**fields, **overrides})

    return make


@pytest.fixture()
async def pool(database_url: str) -> AsyncIterator[AsyncConnectionPool]:
    """A pool on a fresh, migrated database (migration 0002 included)."""
    pool = await db.open_pool(database_url, max_size=4)
    yield pool
    await pool.close()
