"""The long-lived resources a worker's stages share, built once when the worker starts."""

from __future__ import annotations

import asyncio
import logging
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from psycopg_pool import AsyncConnectionPool

from clawdesk.settings import AppSettings, ConnectionSettings

log = logging.getLogger(__name__)


@dataclass
class Services:
    """Connections and models. Tests build one with fakes for what leaves the process."""

    settings: AppSettings
    pool: AsyncConnectionPool
    kb: Any  # clawdesk.kb.index.KnowledgeBase
    nlu: Any  # clawdesk.nlu.tenant_models.TenantNlu
    shop: Any  # clawdesk.integrations.demo_shop.DemoShop
    cache: Any  # clawdesk.storage.cache.LayeredCache (embeddings and retrieval results)
    llm: Any = None  # clawdesk.llm.LlmReplier in LLM mode; None: offline replies
    channels: Any = None  # connectors.config.ChannelSettings; None: the environment's


_current: Services | None = None
_ready = asyncio.Event()


def install(services: Services) -> None:
    """Make `services` the ones every stage uses."""
    global _current
    _current = services
    _ready.set()


def current() -> Services:
    """The installed services (raises if the worker has not started them)."""
    if _current is None:
        raise RuntimeError("services are not started yet")
    return _current


async def ready(timeout: float = 120.0) -> Services:
    """Wait until the services are installed."""
    await asyncio.wait_for(_ready.wait(), timeout)
    return current()


def packaged_data(*parts: str) -> Path:
    """A path inside the package's data folder."""
    return Path(__file__).parent.joinpath("data", *parts)


def _import_model_stack() -> None:
    import sentence_transformers  # noqa: F401
    import sklearn.linear_model  # noqa: F401


async def build(
    settings: AppSettings, conn: ConnectionSettings, *, nlu: bool = True, kb: bool = True
) -> Services:
    """Open Postgres, load the models and sync the demo knowledge base (off the loop).

    A worker of one stage loads only what it uses: the intent model with `nlu`, the
    embedding model, Qdrant and the knowledge base with `kb`; without either, torch and
    sentence-transformers are not even imported, and the worker starts in about a second.
    """
    from clawdesk.integrations.demo_shop import DemoShop
    from clawdesk.storage import db
    from clawdesk.storage.cache import LayeredCache

    loop = asyncio.get_running_loop()
    timings: dict[str, float] = {}  # seconds per step, logged: start-up time is an SLO

    def run(fn: Any, *args: Any) -> asyncio.Future[Any]:
        name = getattr(fn, "__qualname__", repr(fn))

        def timed() -> Any:
            began = time.monotonic()
            try:
                return fn(*args)
            finally:
                timings[name] = round(time.monotonic() - began, 2)

        return loop.run_in_executor(None, timed)

    migrated = run(db.apply_migrations_when_up, conn.database_url, settings.startup_db_wait_s)
    knowledge, intents = (
        await _load_models(settings, conn, run, nlu=nlu, kb=kb) if nlu or kb else (None, None)
    )
    await migrated
    pool = await db.open_pool(conn.database_url)
    log.info("services built", extra={"timings": timings})
    shop = DemoShop.from_file(packaged_data("shop", "orders.json"))
    cache = LayeredCache.from_settings("retrieval", connection=conn, app=settings)
    from clawdesk.llm import build_replier

    llm = build_replier(settings, pool)  # None unless an LLM endpoint and key are set
    return Services(
        settings=settings, pool=pool, kb=knowledge, nlu=intents, shop=shop, cache=cache, llm=llm
    )


async def _load_models(
    settings: AppSettings, conn: ConnectionSettings, run: Any, *, nlu: bool, kb: bool
) -> tuple[Any, Any]:
    """The synced knowledge base (with `kb`) and the tenant intent models (with `nlu`)."""
    from clawdesk.kb.encoders import settings_encoder
    from clawdesk.kb.index import KnowledgeBase, open_qdrant
    from clawdesk.kb.keywords import tokenize
    from clawdesk.nlu.tenant_models import TenantNlu

    # Start-up time is the longest chain here, so nothing waits that need not: the
    # database, Qdrant, the embedding model and the intent model load side by side.
    api_key = conn.qdrant_api_key.get_secret_value() if conn.qdrant_api_key else None
    intents = TenantNlu(settings.model_root, settings.embedding_model, settings.nlu_min_confidence)
    # One thread imports torch and sentence-transformers (most of the start-up time)
    # before the model loaders start: several threads importing the same packages at
    # once contend for the GIL and the import locks and made the whole take twice as long.
    await run(_import_model_stack)

    async def load_kb() -> Any:
        embedder_f = run(settings_encoder, settings)
        client_f = run(open_qdrant, conn.qdrant_url, settings.data_dir / "qdrant", api_key)
        jieba_f = run(tokenize, "预热 warm up")  # builds jieba's dictionary once
        knowledge = KnowledgeBase(await client_f, await embedder_f)
        report, _ = await asyncio.gather(
            run(knowledge.sync, settings.default_tenant, [settings.kb_dir or packaged_data("kb")]),
            jieba_f,
        )
        log.info("knowledge base synced", extra={"report": report.__dict__})
        return knowledge

    async def load_intents() -> None:
        version = await run(
            intents.ensure,
            settings.default_tenant,
            packaged_data("intents", "demo.yaml"),
            settings.nlu_model_version or None,
        )
        log.info("intent model loaded", extra={"version": version})

    knowledge, _ = await asyncio.gather(
        load_kb() if kb else asyncio.sleep(0), load_intents() if nlu else asyncio.sleep(0)
    )
    # Pay first-call costs (torch kernels, the head) now, while the consumer group is
    # still joining, not on the first customer's message.
    warm = []
    if knowledge is not None:
        warm.append(run(knowledge.embedder.encode, ["warm up"]))
    if nlu:
        warm.append(run(intents.predict, settings.default_tenant, ["warm up"]))
    await asyncio.gather(*warm)
    return knowledge, (intents if nlu else None)
