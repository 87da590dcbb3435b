"""The LLM mode against a fake OpenAI-compatible server on loopback, the fake providers
(for tools) and a fresh Postgres database (token counters, allow-lists, audit)."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable, Iterator
from typing import Any

import pytest
from psycopg_pool import AsyncConnectionPool
from pydantic import SecretStr

from clawdesk.integrations import Integrations, ProviderSettings
from clawdesk.llm import LlmReplier, ToolBox, build_replier
from clawdesk.settings import AppSettings
from clawdesk.skills import PostgresAudit, load_registry
from clawdesk.skills.audit import allowed_skills
from clawdesk.skills.worker_skills import AllowLists, SkillRuntime
from clawdesk.storage import db
from tests.fakes.base import Served
from tests.fakes.fixtures import fake_servers, fakes, provider_settings
from tests.fakes.openai_server import API_KEY, FakeOpenAI

__all__ = ["fake_servers", "fakes", "provider_settings"]


@pytest.fixture(scope="session")
def openai_server() -> Iterator[FakeOpenAI]:
    """The fake chat-completions endpoint, on a free loopback port for the session."""
    fake = FakeOpenAI()
    served = Served(fake).start()
    yield fake
    served.stop()


@pytest.fixture()
def fake_llm(openai_server: FakeOpenAI) -> FakeOpenAI:
    """The fake with no scripted answers, delays, faults or recorded requests."""
    openai_server.reset()
    return openai_server


@pytest.fixture()
async def pool(database_url: str) -> AsyncIterator[AsyncConnectionPool]:
    """A pool on a fresh, migrated database (the demo tenant allows every skill)."""
    pool = await db.open_pool(database_url, max_size=4)
    yield pool
    await pool.close()


@pytest.fixture()
async def integrations(provider_settings: ProviderSettings) -> AsyncIterator[Integrations]:
    providers = Integrations(provider_settings)
    yield providers
    await providers.aclose()


@pytest.fixture()
def llm_settings(fake_llm: FakeOpenAI) -> Callable[..., AppSettings]:
    """Settings in LLM mode pointed at the fake, quick to give up; fields overridable."""

    def make(**overrides: Any) -> AppSettings:
        fields: dict[str, Any] = {
            "llm_base_url": f"{fake_llm.base_url}/v1",
            "llm_api_key": SecretStr(API_KEY),
            "llm_model": "fake-model",
            "llm_timeout_s": 2.0,
            "llm_max_retries": 2,
            "llm_deadline_s": 5.0,
            "llm_breaker_failures": 3,
            "llm_breaker_reset_s": 30.0,
            **overrides,
        }
        return AppSettings(**fields)

    return make


@pytest.fixture()
def toolbox(pool: AsyncConnectionPool, integrations: Integrations) -> ToolBox:
    """The skills stage's runtime (registry, provider clients on the fakes, Postgres audit
    and allow-lists) as the LLM's tools."""

    async def read(tenant_id: str) -> frozenset[str]:
        return await allowed_skills(pool, tenant_id)

    runtime = SkillRuntime(
        load_registry(), integrations, PostgresAudit(pool), AllowLists(read, ttl_s=0)
    )
    return ToolBox(runtime)


@pytest.fixture()
async def make_replier(
    llm_settings: Callable[..., AppSettings], pool: AsyncConnectionPool
) -> AsyncIterator[Callable[..., LlmReplier]]:
    """Build LLM repliers as a worker does (closed after the test)."""
    made: list[LlmReplier] = []

    def make(**overrides: Any) -> LlmReplier:
        replier = build_replier(llm_settings(**overrides), pool)
        assert replier is not None
        made.append(replier)
        return replier

    yield make
    for replier in made:
        await replier.client.aclose()
