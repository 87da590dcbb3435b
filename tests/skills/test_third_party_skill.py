"""A third-party skill, installed only through its `clawdesk.skills` entry point, is
found by the registry, chosen by the dialogue for its intent, asks for confirmation
because its manifest declares a side effect, runs after "yes", and is audited in
Postgres — through the functions the skills stage uses (decide, the runtime, conclude,
and the reply's render)."""

from __future__ import annotations

import sys
import textwrap
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from psycopg_pool import AsyncConnectionPool

from clawdesk.integrations import Integrations, ProviderSettings
from clawdesk.skills import MemoryAudit, PostgresAudit, SkillContext
from clawdesk.skills.audit import allowed_skills
from clawdesk.skills.dialogue import DialogueState, Policy, Turn, conclude, decide
from clawdesk.skills.registry import installed, load_registry
from clawdesk.skills.render import render
from clawdesk.skills.worker_skills import AllowLists, SkillRuntime
from schemas import SkillResult, SkillStatus
from tests.llm.events import skill_result

T0 = datetime(2026, 12, 1, 9, 0, tzinfo=UTC)
POLICY = Policy()
PACKAGE = "clawdesk_giftwrap"

SKILL_MODULE = '''
"""A shop's own skill: gift-wrap an order (a side effect: it changes the order)."""

from clawdesk.skills import Skill, SkillManifest, SkillOutcome
from clawdesk.skills.manifest import Route

WRAPPED = []  # what was wrapped, for the test to see


async def _wrap(ctx, args):
    WRAPPED.append(args["order"])
    return SkillOutcome.ok({"order": args["order"], "paper": args.get("paper", "red")})


gift_wrap = Skill(
    SkillManifest(
        name="gift_wrap",
        description="Gift-wrap an order that has not shipped yet.",
        parameters={
            "type": "object",
            "properties": {"order": {"type": "string"}, "paper": {"type": "string"}},
            "required": ["order"],
            "additionalProperties": False,
        },
        side_effects=True,
        routes=[
            Route(
                intent="gift_wrap_request",
                entities={"order_number": "order"},
                ask="order",
            )
        ],
        confirmation={
            "en": "Shall I gift-wrap order #{order}? Reply yes to confirm.",
            "zh": "要为订单 #{order} 包装礼品吗?回复“确认”继续。",
        },
        templates={
            "en": {"action": "gift-wrap", "done": "Order #{order} will be gift-wrapped ({paper})."},
            "zh": {"action": "包装礼品", "done": "订单 #{order} 将包装礼品({paper})。"},
        },
    ),
    _wrap,
)
'''


@pytest.fixture()
def giftwrap_installed(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    """A `clawdesk-giftwrap` distribution on sys.path: its package and its dist-info
    with the entry point, as `pip install` would leave them."""
    (tmp_path / PACKAGE).mkdir()
    (tmp_path / PACKAGE / "__init__.py").write_text(SKILL_MODULE, encoding="utf-8")
    dist_info = tmp_path / "clawdesk_giftwrap-0.1.dist-info"
    dist_info.mkdir()
    (dist_info / "METADATA").write_text(
        "Metadata-Version: 2.1\nName: clawdesk-giftwrap\nVersion: 0.1\n", encoding="utf-8"
    )
    (dist_info / "entry_points.txt").write_text(
        textwrap.dedent(
            f"""\
            [clawdesk.skills]
            gift_wrap = {PACKAGE}:gift_wrap
            """
        ),
        encoding="utf-8",
    )
    monkeypatch.syspath_prepend(str(tmp_path))  # also invalidates the import caches
    monkeypatch.delitem(sys.modules, PACKAGE, raising=False)
    installed.cache_clear()
    yield tmp_path
    installed.cache_clear()


def turn(text: str, intent: str, event_id: str, at: datetime, **entities: str) -> Turn:
    slots = {k: v for k, v in entities.items() if k == "order_number"}
    return Turn(event_id, text, intent, at, dict(entities), slots)


def result_of(skill: str, status: SkillStatus, data: dict[str, Any]) -> SkillResult:
    """A SkillResult as the stage passes it on, for the reply's render."""
    return skill_result("…", intent="gift_wrap_request", skill=skill, status=status, data=data)


def test_without_the_distribution_the_intent_routes_nowhere() -> None:
    runtime = SkillRuntime(
        load_registry(), Integrations(ProviderSettings()), MemoryAudit(), AllowLists.fixed([])
    )
    t = turn("please gift-wrap order 1002", "gift_wrap_request", "e1", T0, order_number="1002")
    assert "gift_wrap" not in runtime.registry
    assert decide(t, DialogueState(), POLICY, runtime.routes).skill is None


async def test_an_installed_skill_is_routed_confirmed_run_and_audited(
    giftwrap_installed: Path, pool: AsyncConnectionPool
) -> None:
    async with pool.connection() as conn:
        await conn.execute("INSERT INTO tenant_skills VALUES ('demo', 'gift_wrap')")

    async def read(tenant_id: str) -> frozenset[str]:
        return await allowed_skills(pool, tenant_id)

    runtime = SkillRuntime(
        load_registry(), Integrations(ProviderSettings()), PostgresAudit(pool), AllowLists(read)
    )
    assert "gift_wrap" in runtime.registry.names()
    assert runtime.routes.has_side_effects("gift_wrap")
    ctx = SkillContext(tenant_id="demo", conversation_id="c-gift", customer_id="web-1")

    # The message's NLU intent is the skill's: it is chosen, and asks first.
    ask = turn("please gift-wrap order 1002", "gift_wrap_request", "e1", T0, order_number="1002")
    decision = decide(ask, DialogueState(), POLICY, runtime.routes)
    assert (decision.skill, decision.args) == ("gift_wrap", {"order": "1002"})
    outcome = await runtime.run(
        "gift_wrap", ctx, decision.args, confirmed=decision.confirmed, key_event_id="e1"
    )
    status = SkillStatus(outcome.status.value)
    asked = conclude(ask, decision, POLICY, status, outcome.data, outcome.message)
    assert asked.status is SkillStatus.NEEDS_CONFIRMATION
    assert asked.state.pending is not None and asked.state.pending.skill == "gift_wrap"
    question = render(result_of("gift_wrap", asked.status, asked.data))
    assert question is not None
    assert question.text == "Shall I gift-wrap order #1002? Reply yes to confirm."
    wrapped = __import__(PACKAGE).WRAPPED
    assert wrapped == []  # nothing done before the "yes"

    # "yes": it runs, once, keyed by the message that asked for it.
    yes = turn("yes", "oos", "e2", T0 + timedelta(seconds=20))
    confirmed = decide(yes, asked.state, POLICY, runtime.routes)
    assert confirmed.run and confirmed.confirmed and confirmed.key_event_id == "e1"
    done = await runtime.run(
        "gift_wrap",
        ctx,
        confirmed.args,
        confirmed=confirmed.confirmed,
        key_event_id=confirmed.key_event_id,
    )
    final = conclude(yes, confirmed, POLICY, SkillStatus(done.status.value), done.data)
    assert final.status is SkillStatus.OK and wrapped == ["1002"]
    reply = render(result_of("gift_wrap", final.status, final.data))
    assert reply is not None and reply.text == "Order #1002 will be gift-wrapped (red)."

    async with pool.connection() as conn:
        cur = await conn.execute(
            "SELECT skill, status, arguments, idempotency_key, conversation_id"
            " FROM skill_audit ORDER BY id"
        )
        rows = await cur.fetchall()
    assert [(r["skill"], r["status"]) for r in rows] == [
        ("gift_wrap", "needs_confirmation"),
        ("gift_wrap", "ok"),
    ]
    assert rows[1]["arguments"] == {"order": "1002"}
    # The run is keyed by the message that asked, as the question was.
    assert rows[1]["idempotency_key"] == rows[0]["idempotency_key"]
    assert str(rows[1]["idempotency_key"]).startswith("gift_wrap:")
    assert {r["conversation_id"] for r in rows} == {"c-gift"}
