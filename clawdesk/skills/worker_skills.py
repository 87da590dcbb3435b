"""The skills a worker runs for the pipeline, with everything a run needs: the registry,
the provider clients, the order and tracking sources behind the cache, the audit log
and the tenants' allow-lists.

Where orders come from: the Shopify client when `CLAWDESK_SHOPIFY_URL` and its token
are set; otherwise, for the default (demo) tenant only and while `CLAWDESK_DEMO_SHOP`
is on, the packaged demo shop (`clawdesk.integrations.demo_shop.DemoShop`, read-only).
Any other tenant without Shopify gets "unavailable". Tracking is DHL's API when
configured; a DHL parcel of an order is otherwise described from the shop's fulfilment
record.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Awaitable, Callable, Collection
from dataclasses import dataclass, field, replace
from typing import Any

from psycopg_pool import AsyncConnectionPool

from clawdesk.data_paths import packaged_data
from clawdesk.integrations.demo_shop import DemoShop
from clawdesk.integrations.providers import Integrations, NotConfigured
from clawdesk.skills.audit import AuditEntry, AuditLog, PostgresAudit, allowed_skills
from clawdesk.skills.base import OutcomeStatus, SkillContext, SkillOutcome
from clawdesk.skills.registry import SkillRegistry, UnknownSkill, load_registry
from clawdesk.skills.routing import Routes
from clawdesk.skills.runner import RunPolicy, idempotency_key, run_skill
from clawdesk.skills.sources import CachedOrders, CachedTracking, OrderSource
from clawdesk.storage.cache import LayeredCache
from clawdesk.storage.decisions import WOULD_RUN

log = logging.getLogger(__name__)

ALLOW_LIST_TTL_S = 30.0  # a change to tenant_skills takes effect within this long


@dataclass
class AllowLists:
    """Each tenant's enabled skills, read from Postgres and kept for a few seconds."""

    read: Callable[[str], Awaitable[frozenset[str]]]
    ttl_s: float = ALLOW_LIST_TTL_S
    _seen: dict[str, tuple[float, frozenset[str]]] = field(default_factory=dict)

    async def __call__(self, tenant_id: str) -> frozenset[str]:
        now = time.monotonic()
        hit = self._seen.get(tenant_id)
        if hit is not None and now - hit[0] < self.ttl_s:
            return hit[1]
        allowed = await self.read(tenant_id)
        self._seen[tenant_id] = (now, allowed)
        return allowed

    @classmethod
    def fixed(cls, skills: Collection[str]) -> AllowLists:
        """The same allow-list for every tenant (offline evaluation, tests)."""
        allowed = frozenset(skills)

        async def read(_: str) -> frozenset[str]:
            return allowed

        return cls(read)


class SkillRuntime:
    """Runs one skill for the pipeline through `runner.run_skill`. `routes` is the
    dialogue's routing table, built once from the registry's manifests."""

    def __init__(
        self,
        registry: SkillRegistry,
        integrations: Integrations,
        audit: AuditLog,
        allow_lists: AllowLists,
        *,
        cache: LayeredCache | None = None,
        demo_shop: DemoShop | None = None,
        demo_tenant: str = "demo",
        policy: RunPolicy | None = None,
        dry_run: bool = False,
    ) -> None:
        self.registry = registry
        self.routes = Routes.of(registry)
        self.integrations = integrations
        self.audit = audit
        self.allow_lists = allow_lists
        self.cache = cache
        self.demo_shop = demo_shop
        self.demo_tenant = demo_tenant
        self.policy = policy or RunPolicy()
        # A shadow run (replay): what would change something outside is recorded, not run.
        self.dry_run = dry_run

    @classmethod
    def from_settings(
        cls, settings: Any, pool: AsyncConnectionPool, redis_url: str | None
    ) -> SkillRuntime:
        """The runtime a worker uses (settings: `clawdesk.settings.AppSettings`)."""
        ttl = settings.skill_cache_ttl_s
        cache = LayeredCache(
            "skills", redis_url, l1_ttl_s=ttl, l2_ttl_s=ttl, namespace=settings.app_id
        )
        demo = (
            DemoShop.from_file(packaged_data("shop", "orders.json")) if settings.demo_shop else None
        )
        policy = RunPolicy(timeout_s=settings.skill_timeout_s, attempts=settings.skill_max_attempts)

        async def read(tenant_id: str) -> frozenset[str]:
            return await allowed_skills(pool, tenant_id)

        return cls(
            load_registry(),
            Integrations.from_settings(settings),
            PostgresAudit(pool, lease_s=settings.skill_idempotency_lease_s),
            AllowLists(read),
            cache=cache,
            demo_shop=demo,
            demo_tenant=settings.default_tenant,
            policy=policy,
            dry_run=bool(settings.shadow_run),
        )

    def orders_for(self, tenant_id: str) -> CachedOrders | None:
        """The tenant's order source behind the cache (None: no shop configured)."""
        source: OrderSource
        try:
            source, name = self.integrations.shopify, "shopify"
        except NotConfigured:
            if self.demo_shop is None or tenant_id != self.demo_tenant:
                return None
            source, name = self.demo_shop, "demo"
        return CachedOrders(source, self._cache(), tenant_id, name)

    def tracking_for(self, tenant_id: str) -> CachedTracking | None:
        """DHL tracking behind the cache (None: DHL is not configured)."""
        try:
            dhl = self.integrations.dhl
        except NotConfigured:
            return None
        return CachedTracking(dhl, self._cache(), tenant_id, "dhl")

    def _cache(self) -> LayeredCache:
        if self.cache is None:
            # Tests and tools without Redis: an L1-only cache with the same behaviour.
            self.cache = LayeredCache("skills", None, l1_ttl_s=60, l2_ttl_s=60)
        return self.cache

    async def run(
        self,
        name: str,
        ctx: SkillContext,
        args: dict[str, Any],
        *,
        confirmed: bool = False,
        key_event_id: str | None = None,
    ) -> SkillOutcome:
        """Run skill `name` for `ctx`; `key_event_id` is the event its idempotency key
        derives from (required for side effects, used for writes)."""
        try:
            skill = self.registry.get(name)
        except UnknownSkill:
            log.warning("skill not registered", extra={"skill": name})
            return SkillOutcome(status=OutcomeStatus.REFUSED, skill=name, message="no such skill")
        # A run is keyed by its event when it has side effects or writes otherwise (a
        # ticket: a redelivered event must not open a second one); `handoff` writes
        # nothing (the handoff agent opens its ticket, idempotent per handoff event).
        manifest = skill.manifest
        if self.dry_run and (manifest.keyed or (manifest.side_effects and confirmed)):
            return await self._would_run(name, ctx, args)
        orders = self.orders_for(ctx.tenant_id)
        ctx = replace(
            ctx,
            integrations=self.integrations,
            orders=orders,
            tracking=self.tracking_for(ctx.tenant_id),
        )
        key = None
        if key_event_id and manifest.keyed_runs:
            key = idempotency_key(ctx.tenant_id, ctx.conversation_id, key_event_id, name)
        outcome = await run_skill(
            skill,
            ctx,
            args,
            tenant_allow_list=await self.allow_lists(ctx.tenant_id),
            confirmed=confirmed,
            idempotency_key=key,
            audit=self.audit,
            policy=self.policy,
        )
        changed = outcome.status is OutcomeStatus.OK and not outcome.replayed
        if skill.manifest.side_effects and changed and orders is not None:
            await self._refresh(orders, args)
        return outcome

    async def _would_run(self, name: str, ctx: SkillContext, args: dict[str, Any]) -> SkillOutcome:
        """The outcome of a side effect a shadow run holds back: "would run", with the
        arguments, in its own audit log (the run's schema), and nothing called."""
        data = {WOULD_RUN: True, "arguments": dict(args)}
        outcome = SkillOutcome(status=OutcomeStatus.OK, skill=name, data=data, message="would run")
        entry = AuditEntry(
            ctx.tenant_id, ctx.conversation_id, name, args, None, WOULD_RUN, data, None, False, 0
        )
        await self.audit.record(entry)
        log.info("side effect held back (shadow run)", extra={"skill": name})
        return outcome

    async def _refresh(self, orders: CachedOrders, args: dict[str, Any]) -> None:
        """Re-read a changed order so the next status question does not see the old one."""
        try:
            await orders.refresh(str(args.get("order", "")))
        except Exception:  # the action is done; a stale cache entry expires on its own
            log.warning("could not refresh a changed order", exc_info=True)

    async def aclose(self) -> None:
        """Close the provider clients and the cache's Redis connection."""
        await self.integrations.aclose()
        if self.cache is not None:
            await self.cache.close()
