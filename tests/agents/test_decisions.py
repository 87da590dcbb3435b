"""Each message's decision (intent, KB hits, skill and arguments, reply, handoff) is
recorded once in Postgres by the reply stage: the baseline a replay is compared with."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any
from unittest.mock import patch

import pytest
from psycopg_pool import AsyncConnectionPool

from clawdesk import services
from clawdesk.settings import AppSettings
from clawdesk.storage import db, decisions
from schemas import Reply, SkillStatus
from tests.llm.events import skill_result


@pytest.fixture()
async def pool(database_url: str) -> AsyncIterator[AsyncConnectionPool]:
    pool = await db.open_pool(database_url, max_size=2)
    settings = AppSettings(_env_file=None)  # type: ignore[call-arg]
    services.install(
        services.Services(settings=settings, pool=pool, kb=None, nlu=None, shop=None, cache=None)
    )
    yield pool
    await pool.close()


async def stored(pool: AsyncConnectionPool) -> list[dict[str, Any]]:
    async with pool.connection() as conn:
        cur = await conn.execute("SELECT * FROM decisions ORDER BY message_id")
        return await cur.fetchall()  # type: ignore[return-value]


async def test_reply_stage_records_the_decision_behind_each_reply(
    test_app: Any, pool: AsyncConnectionPool
) -> None:
    from agents.reply import compose_reply

    kb = skill_result(conversation="c1", message_id="m1")
    order = skill_result(
        "where is order 1001",
        conversation="c2",
        message_id="m2",
        intent="order_status",
        skill="order_status",
        status=SkillStatus.NOT_FOUND,
        data={"reference": "#1001"},
    )
    order = order.model_copy(update={"arguments": {"order": "1001"}})
    all_sent = asyncio.Event()

    def count(**_: Any) -> None:
        if send.await_count == 3:
            all_sent.set()

    with patch("agents.reply.reply_topic.send", side_effect=count) as send:
        async with compose_reply.test_context() as agent:
            await agent.put(kb.to_bytes())
            await agent.put(order.to_bytes())
            await agent.put(kb.to_bytes())  # a redelivery stores nothing more
            await asyncio.wait_for(all_sent.wait(), 5)
    replies = [Reply.from_bytes(c.kwargs["value"]) for c in send.await_args_list]
    rows = await stored(pool)
    assert len(rows) == 2
    by_intent = {r["intent"]: r for r in rows}
    shipping, status = by_intent["shipping_info"], by_intent["order_status"]
    assert shipping["answerable"] is True and shipping["outcome"] == "kb_answer"
    assert shipping["top_doc_id"] == "en/shipping.md"
    assert [h["doc_id"] for h in shipping["hits"]] == ["en/shipping.md", "en/returns.md"]
    assert shipping["reply_text"] == replies[0].text
    assert shipping["skill"] is None and shipping["skill_args"] == {}
    assert status["skill"] == "order_status" and status["skill_status"] == "not_found"
    assert status["skill_args"] == {"order": "1001"}
    assert status["reply_id"] == replies[1].reply_id and status["handoff"] is False
    assert {r["model_version"] for r in rows} == {"v1"}
    assert {r["kb_version"] for r in rows} == {"kb-1"}


async def test_a_handoff_and_a_quiet_turn_are_recorded(
    test_app: Any, pool: AsyncConnectionPool
) -> None:
    from agents.reply import compose_reply

    handoff = skill_result(
        "I want a human",
        conversation="c3",
        message_id="m3",
        intent="human_agent",
        skill="handoff",
        status=SkillStatus.OK,
        data={"reason": "customer_request"},
    )
    sent = asyncio.Event()
    with patch("agents.reply.reply_topic.send", side_effect=lambda **_: sent.set()):
        async with compose_reply.test_context() as agent:
            await agent.put(handoff.to_bytes())
            await asyncio.wait_for(sent.wait(), 5)  # recorded before it is sent
    later = skill_result("hello?", conversation="c3", message_id="m4").context.nlu.accepted
    assert await decisions.record(pool, decisions.of_quiet(later.message))
    assert not await decisions.record(pool, decisions.of_quiet(later.message))
    rows = {r["outcome"]: r for r in await stored(pool)}
    assert rows["handoff"]["handoff"] is True and rows["handoff"]["skill"] == "handoff"
    assert rows[decisions.HUMAN]["handoff"] is True
    assert rows[decisions.HUMAN]["reply_text"] is None
