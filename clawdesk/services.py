"""The long-lived resources a worker's stages share, built once when the worker starts."""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass, field
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
    extras: dict[str, Any] = field(default_factory=dict)


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


async def build(settings: AppSettings, conn: ConnectionSettings) -> Services:
    """Open Postgres, load the models and sync the demo knowledge base (off the loop)."""
    from clawdesk import db
    from clawdesk.cache import LayeredCache
    from clawdesk.embeddings import shared_embedder
    from clawdesk.kb.keywords import tokenize
    from clawdesk.kb.store import KnowledgeBase, open_qdrant
    from clawdesk.nlu_runtime import TenantNlu
    from clawdesk.shop import DemoShop

    loop = asyncio.get_running_loop()
    await loop.run_in_executor(None, db.apply_migrations, conn.database_url)
    pool = await db.open_pool(conn.database_url)
    embedder = await loop.run_in_executor(
        None, shared_embedder, settings.embedding_model, settings.embedding_batch_size
    )
    api_key = conn.qdrant_api_key.get_secret_value() if conn.qdrant_api_key else None
    client = open_qdrant(conn.qdrant_url, settings.data_dir / "qdrant", api_key)
    kb = KnowledgeBase(client, embedder)
    nlu = TenantNlu(settings.model_root, embedder.model_path, settings.nlu_min_confidence)
    # Independent and CPU-bound in C code: run them side by side.
    report, version = await asyncio.gather(
        loop.run_in_executor(None, kb.sync, settings.default_tenant, [packaged_data("kb")]),
        loop.run_in_executor(
            None,
            nlu.ensure,
            settings.default_tenant,
            packaged_data("intents", "demo.yaml"),
            settings.nlu_model_version or None,
        ),
    )
    # Pay first-call costs (jieba's dictionary, torch kernels, the head) now, while the
    # consumer group is still joining, not on the first customer's message.
    await asyncio.gather(
        loop.run_in_executor(None, tokenize, "预热 warm up"),
        loop.run_in_executor(None, embedder.encode, ["warm up"]),
        loop.run_in_executor(None, nlu.predict, settings.default_tenant, ["warm up"]),
    )
    log.info("knowledge base synced", extra={"report": report.__dict__})
    log.info("intent model loaded", extra={"version": version})
    shop = DemoShop.from_file(packaged_data("shop", "orders.json"))
    cache = LayeredCache.from_settings("retrieval", connection=conn, app=settings)
    return Services(settings=settings, pool=pool, kb=kb, nlu=nlu, shop=shop, cache=cache)
