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
    kb: Any  # clawdesk.kb.store.KnowledgeBase
    nlu: Any  # clawdesk.nlu_runtime.TenantNlu
    shop: Any  # clawdesk.shop.DemoShop
    cache: Any  # clawdesk.cache.LayeredCache (embeddings and retrieval results)
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


async def build(settings: AppSettings, conn: ConnectionSettings) -> Services:
    """Open Postgres, load the models and sync the demo knowledge base (off the loop)."""
    from clawdesk import db
    from clawdesk.cache import LayeredCache
    from clawdesk.kb.encoders import settings_encoder
    from clawdesk.kb.keywords import tokenize
    from clawdesk.kb.store import KnowledgeBase, open_qdrant
    from clawdesk.nlu_runtime import TenantNlu
    from clawdesk.shop import DemoShop

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

    # Start-up time is the longest chain here, so nothing waits that need not: the
    # database, Qdrant, the embedding model and the intent model load side by side.
    api_key = conn.qdrant_api_key.get_secret_value() if conn.qdrant_api_key else None
    nlu = TenantNlu(
        settings.model_root,
        settings.embedding_model,
        settings.nlu_min_confidence,
    )
    migrated = run(db.apply_migrations_when_up, conn.database_url, settings.startup_db_wait_s)
    # One thread imports torch and sentence-transformers (most of the start-up time)
    # before the model loaders start: several threads importing the same packages at
    # once contend for the GIL and the import locks and made the whole take twice as long.
    await run(_import_model_stack)
    embedder_f = run(settings_encoder, settings)
    client_f = run(open_qdrant, conn.qdrant_url, settings.data_dir / "qdrant", api_key)
    version_f = run(
        nlu.ensure,
        settings.default_tenant,
        packaged_data("intents", "demo.yaml"),
        settings.nlu_model_version or None,
    )
    jieba_f = run(tokenize, "预热 warm up")  # builds jieba's dictionary once
    await migrated
    pool = await db.open_pool(conn.database_url)
    kb = KnowledgeBase(await client_f, await embedder_f)
    report, version, *_ = await asyncio.gather(
        run(kb.sync, settings.default_tenant, [settings.kb_dir or packaged_data("kb")]),
        version_f,
        jieba_f,
    )
    # Pay first-call costs (torch kernels, the head) now, while the consumer group is
    # still joining, not on the first customer's message.
    await asyncio.gather(
        run(kb.embedder.encode, ["warm up"]),
        run(nlu.predict, settings.default_tenant, ["warm up"]),
    )
    log.info("knowledge base synced", extra={"report": report.__dict__, "timings": timings})
    log.info("intent model loaded", extra={"version": version})
    shop = DemoShop.from_file(packaged_data("shop", "orders.json"))
    cache = LayeredCache.from_settings("retrieval", connection=conn, app=settings)
    from clawdesk.llm import build_replier

    llm = build_replier(settings, pool)  # None unless an LLM endpoint and key are set
    return Services(settings=settings, pool=pool, kb=kb, nlu=nlu, shop=shop, cache=cache, llm=llm)
