"""Token counters in Postgres: once per completion id, per conversation and tenant-day."""

from __future__ import annotations

from psycopg_pool import AsyncConnectionPool

from clawdesk.llm.budget import CapScope, Headroom, TokenBudget, Usage


async def test_a_call_recorded_twice_counts_once(pool: AsyncConnectionPool) -> None:
    budget = TokenBudget(pool, conversation_cap=100, tenant_daily_cap=1000)
    usage = Usage("chatcmpl-1", "m", prompt_tokens=60, completion_tokens=20, total_tokens=80)
    assert await budget.record("demo", "c1", "r-1", usage)
    assert not await budget.record("demo", "c1", "r-1", usage)  # a retried bookkeeping
    spent = await budget.spent("demo", "c1")
    assert (spent.conversation, spent.tenant_today) == (80, 80)
    assert not (await budget.headroom("demo", "c1")).reached

    second = Usage("chatcmpl-2", "m", prompt_tokens=15, completion_tokens=5, total_tokens=20)
    assert await budget.record("demo", "c1", "r-2", second)
    assert await budget.headroom("demo", "c1") == Headroom(0, CapScope.CONVERSATION)
    assert await budget.headroom("demo", "c2") == Headroom(100, CapScope.CONVERSATION)


async def test_tenant_day_cap_and_no_caps(pool: AsyncConnectionPool) -> None:
    usage = Usage("chatcmpl-9", "m", prompt_tokens=900, completion_tokens=100, total_tokens=1000)
    await TokenBudget(pool, 0, 0).record("demo", "c1", "r-1", usage)
    assert await TokenBudget(pool, 0, 1000).headroom("demo", "c-new") == Headroom(
        0, CapScope.TENANT_DAY
    )
    assert not (await TokenBudget(pool, 0, 1001).headroom("demo", "c-new")).reached
    assert await TokenBudget(pool, 0, 0).headroom("demo", "c1") == Headroom(None)
    assert await TokenBudget(pool, 0, 1000).headroom("other", "c-new") == Headroom(
        1000, CapScope.TENANT_DAY
    )


async def test_headroom_is_what_the_tighter_cap_leaves(pool: AsyncConnectionPool) -> None:
    usage = Usage("chatcmpl-5", "m", prompt_tokens=250, completion_tokens=50, total_tokens=300)
    await TokenBudget(pool, 0, 0).record("demo", "c1", "r-1", usage)
    assert await TokenBudget(pool, 1000, 5000).headroom("demo", "c1") == Headroom(
        700, CapScope.CONVERSATION
    )
    assert await TokenBudget(pool, 1000, 500).headroom("demo", "c2") == Headroom(
        200, CapScope.TENANT_DAY
    )
    assert await TokenBudget(pool, 0, 0).headroom("demo", "c1") == Headroom(None)
    over = await TokenBudget(pool, 300, 0).headroom("demo", "c1")
    assert over == Headroom(0, CapScope.CONVERSATION) and over.reached
