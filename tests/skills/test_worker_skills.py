"""The pipeline's skill runtime: where orders come from (Shopify or the demo shop), the
cache in front of order and tracking reads, allow-lists from Postgres, and refunds that
run once per confirmed request — against the fake providers over HTTP."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from typing import Any

import pytest
from psycopg_pool import AsyncConnectionPool
from pydantic import SecretStr

from clawdesk.integrations import Integrations, ProviderSettings
from clawdesk.integrations.demo_shop import DemoShop
from clawdesk.services import packaged_data
from clawdesk.skills import MemoryAudit, OutcomeStatus, PostgresAudit, SkillContext
from clawdesk.skills.audit import allowed_skills
from clawdesk.skills.registry import load_registry
from clawdesk.skills.worker_skills import AllowLists, SkillRuntime
from clawdesk.storage.cache import LayeredCache
from tests.fakes import shopify
from tests.fakes.fixtures import Fakes

MIKE = "mike.turner@example.com"
ALL = load_registry().names()
Make = Callable[..., SkillRuntime]


def ctx(tenant: str = "demo", **fields: Any) -> SkillContext:
    return SkillContext(tenant_id=tenant, conversation_id="conv-r", customer_id="u1", **fields)


@pytest.fixture()
async def make_runtime(
    provider_settings: ProviderSettings,
) -> AsyncIterator[Make]:
    """Runtimes with the given providers (default: every fake), an L1-only cache."""
    made: list[SkillRuntime] = []

    def make(settings: ProviderSettings | None = None, **kwargs: Any) -> SkillRuntime:
        kwargs.setdefault("audit", MemoryAudit())
        kwargs.setdefault("allow_lists", AllowLists.fixed(ALL))
        runtime = SkillRuntime(
            load_registry(),
            Integrations(settings or provider_settings),
            kwargs.pop("audit"),
            kwargs.pop("allow_lists"),
            cache=LayeredCache("skills-test", None, l1_ttl_s=60, l2_ttl_s=60),
            demo_shop=DemoShop.from_file(packaged_data("shop", "orders.json")),
            **kwargs,
        )
        made.append(runtime)
        return runtime

    yield make
    for runtime in made:
        await runtime.aclose()


async def test_demo_tenant_reads_the_demo_shop_when_shopify_is_unset(make_runtime: Make) -> None:
    runtime = make_runtime(ProviderSettings())
    mine = await runtime.run("order_status", ctx(), {"order": "1002"})
    other = await runtime.run("order_status", ctx("acme"), {"order": "1002"})
    assert mine.status is OutcomeStatus.OK and mine.data["total"] == "313.90 USD"
    assert other.status is OutcomeStatus.UNAVAILABLE, "no other tenant sees the demo orders"


async def test_order_reads_are_cached_per_tenant_and_order(make_runtime: Make, fakes: Fakes):
    runtime = make_runtime()
    for _ in range(3):
        assert (await runtime.run("order_status", ctx(), {"order": "#1002"})).data["order"]
    await runtime.run("order_status", ctx(), {"order": "1003"})
    await runtime.run("order_status", ctx("acme"), {"order": "1002"})
    lookups = [c.query for c in fakes.shopify.calls_to("GET", "/orders.json")]
    assert len(lookups) == 3, "one read per (tenant, order); repeats come from the cache"
    key = runtime.orders_for("demo").key("ORD-1002")  # type: ignore[union-attr]
    assert key.split(":")[1:] == ["demo", "shopify", "1002"]


async def test_dhl_tracking_is_cached(make_runtime: Make, fakes: Fakes) -> None:
    runtime = make_runtime()
    first = await runtime.run("track_shipment", ctx(), {"order": "1009"})
    second = await runtime.run("track_shipment", ctx(), {"order": "1009"})
    assert first.data["source"] == "dhl" and first.data == second.data
    assert len(fakes.dhl.calls_to("GET", "/track/shipments")) == 1


async def test_without_dhl_a_dhl_parcel_is_told_from_the_shop(make_runtime: Make) -> None:
    runtime = make_runtime(ProviderSettings())
    out = await runtime.run("track_shipment", ctx(), {"order": "1009"})
    assert out.status is OutcomeStatus.OK
    assert (out.data["source"], out.data["carrier"], out.data["status"]) == (
        "shopify",
        "DHL Express",
        "out_for_delivery",
    )
    # By number too: the shop knows which order it shipped the parcel with.
    by_number = await runtime.run("track_shipment", ctx(), {"tracking_number": "4817263950"})
    assert by_number.status is OutcomeStatus.OK
    assert (by_number.data["order"], by_number.data["status"]) == ("#1009", "out_for_delivery")
    unknown = await runtime.run("track_shipment", ctx(), {"tracking_number": "YT0000000000000000"})
    assert unknown.status is OutcomeStatus.NOT_FOUND


async def test_a_parcel_number_the_shop_shipped_is_tracked_by_its_order(make_runtime: Make) -> None:
    runtime = make_runtime(ProviderSettings())
    out = await runtime.run("track_shipment", ctx(), {"tracking_number": "yt2631100012345678"})
    assert out.status is OutcomeStatus.OK
    assert (out.data["order"], out.data["carrier"], out.data["status"]) == (
        "#1002",
        "YunExpress",
        "in_transit",
    )


async def test_refund_is_unavailable_without_stripe_before_asking(make_runtime: Make) -> None:
    runtime = make_runtime(ProviderSettings())
    out = await runtime.run("refund", ctx(), {"order": "1002", "email": MIKE})
    assert out.status is OutcomeStatus.UNAVAILABLE
    assert "stripe is not configured" in out.message


async def test_cancel_is_unavailable_on_the_read_only_demo_shop(make_runtime: Make) -> None:
    runtime = make_runtime(ProviderSettings())
    out = await runtime.run("cancel_order", ctx(), {"order": "1004", "email": "liuyang@example.cn"})
    assert out.status is OutcomeStatus.UNAVAILABLE


async def test_confirmed_refund_runs_once_and_refreshes_the_cached_order(
    make_runtime: Make, fakes: Fakes
) -> None:
    runtime = make_runtime()
    args = {"order": "1002", "email": MIKE}
    asked = await runtime.run("refund", ctx(), args, key_event_id="e-ask")
    assert asked.status is OutcomeStatus.NEEDS_CONFIRMATION
    assert {k: asked.data[k] for k in ("order", "amount", "currency")} == {
        "order": "#1002",
        "amount": "313.90",
        "currency": "USD",
    }
    assert fakes.stripe.calls_to("POST", "/v1/refunds") == []
    reads = len(fakes.shopify.calls_to("GET", "/orders.json"))

    done = await runtime.run("refund", ctx(), args, confirmed=True, key_event_id="e-ask")
    replay = await runtime.run("refund", ctx(), args, confirmed=True, key_event_id="e-ask")
    assert done.status is OutcomeStatus.OK and done.data["amount"] == "313.90 USD"
    assert replay.replayed and replay.data == done.data
    [call] = fakes.stripe.calls_to("POST", "/v1/refunds")
    assert call.headers["idempotency-key"].startswith("refund:")
    assert len(fakes.shopify.calls_to("GET", "/orders.json")) == reads + 1, "refreshed once"


async def test_a_dry_run_asks_as_usual_but_holds_the_side_effect_back(
    make_runtime: Make, fakes: Fakes
) -> None:
    audit = MemoryAudit()
    runtime = make_runtime(audit=audit, dry_run=True)  # a shadow run's runtime
    args = {"order": "1002", "email": MIKE}
    asked = await runtime.run("refund", ctx(), args, key_event_id="e-ask")
    assert asked.status is OutcomeStatus.NEEDS_CONFIRMATION, "the read-only preview runs"
    assert asked.data["amount"] == "313.90"

    done = await runtime.run("refund", ctx(), args, confirmed=True, key_event_id="e-ask")
    ticket = await runtime.run("create_ticket", ctx(), {"subject": "x"}, key_event_id="e-t")

    assert done.status is OutcomeStatus.OK
    assert done.data == {"would_run": True, "arguments": args}
    assert ticket.data["would_run"] is True
    assert fakes.stripe.calls_to("POST", "/v1/refunds") == []
    assert fakes.zendesk.calls == []
    held = [(e.skill, e.status, e.arguments) for e in audit.entries if e.status == "would_run"]
    assert held == [("refund", "would_run", args), ("create_ticket", "would_run", {"subject": "x"})]


async def test_allow_list_comes_from_postgres(
    make_runtime: Make, pool: AsyncConnectionPool, fakes: Fakes
) -> None:
    async def read(tenant: str) -> frozenset[str]:
        return await allowed_skills(pool, tenant)

    async with pool.connection() as conn:
        await conn.execute(
            "UPDATE tenant_skills SET enabled = false WHERE tenant_id = 'demo' AND skill = 'refund'"
        )
    runtime = make_runtime(audit=PostgresAudit(pool), allow_lists=AllowLists(read))
    refused = await runtime.run("refund", ctx(), {"order": "1002", "email": MIKE})
    allowed = await runtime.run("order_status", ctx(), {"order": "1002"})
    assert refused.status is OutcomeStatus.REFUSED
    assert allowed.status is OutcomeStatus.OK
    async with pool.connection() as conn:
        cur = await conn.execute("SELECT skill, status FROM skill_audit ORDER BY id")
        rows = await cur.fetchall()
    assert [(r["skill"], r["status"]) for r in rows] == [
        ("refund", "refused"),
        ("order_status", "ok"),
    ]


async def test_an_unregistered_skill_is_refused(make_runtime: Make) -> None:
    out = await make_runtime().run("wire_money", ctx(), {})
    assert out.status is OutcomeStatus.REFUSED


async def test_wrong_shopify_token_makes_orders_unavailable(
    make_runtime: Make, provider_settings: ProviderSettings
) -> None:
    settings = provider_settings.model_copy(update={"shopify_token": SecretStr("nope")})
    out = await make_runtime(settings).run("order_status", ctx(), {"order": "1002"})
    assert out.status is OutcomeStatus.UNAVAILABLE
    assert shopify.TOKEN != "nope"
