"""The long-lived resources a worker's stages share, built once when the worker starts.

`current()` is the one holder of a worker's state: its connections, models, skill
runtime and handoff ticket machinery all hang off the installed `Services`, so a test
swaps any of them by installing (or changing) the services, never a module global.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING, Any

from psycopg_pool import AsyncConnectionPool

from clawdesk.data_paths import packaged_data
from clawdesk.handoff.tickets import HandoffTickets
from clawdesk.integrations.demo_shop import DemoShop
from clawdesk.settings import AppSettings, ConnectionSettings
from clawdesk.skills.worker_skills import SkillRuntime
from clawdesk.storage import db
from clawdesk.storage.cache import LayeredCache
from connectors.config import ChannelSettings

if TYPE_CHECKING:
    # For the annotations only: at run time these import qdrant-client, scikit-learn
    # (via the intent model) and openai, seconds of start-up that a worker whose stages
    # use none of them (dispatch, handoff, ingest) must not pay. `build` imports them
    # when they are needed.
    from clawdesk.kb.index import KnowledgeBase
    from clawdesk.llm import LlmReplier
    from clawdesk.nlu.tenant_models import TenantNlu

__all__ = ["Services", "build", "current", "install", "installed", "packaged_data", "ready"]

log = logging.getLogger(__name__)


@dataclass
class Services:
    """Connections, models and worker-scoped machinery. Tests build one with fakes for
    what leaves the process (and leave out what their stage does not use)."""

    settings: AppSettings
    pool: AsyncConnectionPool
    kb: KnowledgeBase | None  # None: this worker's stages search no knowledge base
    nlu: TenantNlu | None  # None: this worker's stages classify no intents
    shop: DemoShop
    cache: LayeredCache  # embeddings and retrieval results
    llm: LlmReplier | None = None  # None: offline replies (no LLM endpoint and key set)
    channels: ChannelSettings | None = None  # None: the environment's
    skills: SkillRuntime | None = None  # the skills the skills and reply stages run
    tickets: HandoffTickets | None = None  # the handoff stage's Zendesk tickets
    # When this worker could first answer (set as the worker installs these services):
    # its heartbeats carry it, so the gateway's /ready counts only a current run.
    ready_at: datetime | None = None

    def knowledge_base(self) -> KnowledgeBase:
        """The knowledge base (raises in a worker whose stages load none)."""
        if self.kb is None:
            raise RuntimeError("this worker's services did not load the knowledge base")
        return self.kb

    def intent_models(self) -> TenantNlu:
        """The tenants' intent models (raises in a worker whose stages load none)."""
        if self.nlu is None:
            raise RuntimeError("this worker's services did not load the intent models")
        return self.nlu

    def skill_runtime(self) -> SkillRuntime:
        """The skill runtime (raises if these services were made without one)."""
        if self.skills is None:
            raise RuntimeError("these services have no skill runtime")
        return self.skills

    def handoff_tickets(self) -> HandoffTickets:
        """The ticket machinery (raises if these services were made without it)."""
        if self.tickets is None:
            raise RuntimeError("these services have no handoff ticket machinery")
        return self.tickets

    async def aclose(self) -> None:
        """Close the provider clients the worker's parts opened (the skills' providers
        and cache, Zendesk, the LLM endpoint). The pool stays open: other shutdown hooks
        (the readiness heartbeat's farewell) still write through it."""
        if self.skills is not None:
            await self.skills.aclose()
        if self.tickets is not None:
            await self.tickets.aclose()
        if self.llm is not None:
            await self.llm.client.aclose()


_current: Services | None = None
_ready = asyncio.Event()


def install(services: Services) -> None:
    """Make `services` the ones every stage uses."""
    global _current
    _current = services
    _ready.set()


def installed() -> Services | None:
    """The installed services, or None before the worker has built them."""
    return _current


def current() -> Services:
    """The installed services (raises if the worker has not started them)."""
    if _current is None:
        raise RuntimeError("services are not started yet")
    return _current


async def ready(timeout: float = 120.0) -> Services:
    """Wait until the services are installed."""
    await asyncio.wait_for(_ready.wait(), timeout)
    return current()


Runner = Callable[..., "asyncio.Future[Any]"]  # runs a blocking call off the loop, timed


def _import_model_stack() -> None:
    # deferred: torch + sentence-transformers + scikit-learn, seconds; models-only workers
    import sentence_transformers  # noqa: F401
    import sklearn.linear_model  # noqa: F401  # deferred: see above


async def build(
    settings: AppSettings, conn: ConnectionSettings, *, nlu: bool = True, kb: bool = True
) -> Services:
    """Open Postgres, load the models and sync the demo knowledge base (off the loop).

    A worker of one stage loads only what it uses: the intent model with `nlu`, the
    embedding model, Qdrant and the knowledge base with `kb`; without either, torch and
    sentence-transformers are not even imported, and the worker starts in about a second.
    """
    loop = asyncio.get_running_loop()
    timings: dict[str, float] = {}  # seconds per step, logged: start-up time is an SLO

    def run(fn: Callable[..., Any], *args: Any) -> asyncio.Future[Any]:
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
    # deferred: clawdesk.llm imports openai (~0.4 s); measured with -X importtime
    from clawdesk.llm import build_replier

    llm = build_replier(settings, pool)  # None unless an LLM endpoint and key are set
    skills = SkillRuntime.from_settings(settings, pool, conn.redis_url)
    return Services(
        settings=settings,
        pool=pool,
        kb=knowledge,
        nlu=intents,
        shop=shop,
        cache=cache,
        llm=llm,
        skills=skills,
        tickets=HandoffTickets.from_settings(settings, pool),
    )


async def _load_models(
    settings: AppSettings, conn: ConnectionSettings, run: Runner, *, nlu: bool, kb: bool
) -> tuple[KnowledgeBase | None, TenantNlu | None]:
    """The synced knowledge base (with `kb`) and the tenant intent models (with `nlu`)."""
    # deferred: qdrant-client, jieba, scikit-learn: ~2 s that dispatch/handoff workers skip
    from clawdesk.kb.embedding_cache import EmbeddingCache  # deferred: see above
    from clawdesk.kb.encoders import settings_encoder
    from clawdesk.kb.index import KnowledgeBase, open_qdrant  # deferred: see above
    from clawdesk.kb.keywords import tokenize  # deferred: see above
    from clawdesk.nlu.tenant_models import TenantNlu  # deferred: see above

    # Start-up time is the longest chain here, so nothing waits that need not: the
    # database, Qdrant, the embedding model and the intent model load side by side.
    api_key = conn.qdrant_api_key.get_secret_value() if conn.qdrant_api_key else None
    intents = TenantNlu(settings.model_root, settings.embedding_model, settings.nlu_min_confidence)
    # One thread imports torch and sentence-transformers (most of the start-up time)
    # before the model loaders start: several threads importing the same packages at
    # once contend for the GIL and the import locks and made the whole take twice as long.
    await run(_import_model_stack)

    async def load_kb() -> KnowledgeBase:
        embedder_f = run(settings_encoder, settings)
        client_f = run(open_qdrant, conn.qdrant_url, settings.data_dir / "qdrant", api_key)
        jieba_f = run(tokenize, "预热 warm up")  # builds jieba's dictionary once
        cache = EmbeddingCache(settings.model_root / "kb-embeddings")
        knowledge = KnowledgeBase(
            await client_f, await embedder_f, cache if settings.kb_embedding_cache else None
        )
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
