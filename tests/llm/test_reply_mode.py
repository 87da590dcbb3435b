"""The reply stage in LLM mode: the LLM's answer with its sources when it answers, the
exact offline reply when it cannot or when LLM mode is off."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any
from unittest.mock import patch

import pytest
from psycopg_pool import AsyncConnectionPool
from pydantic import SecretStr

from clawdesk.llm import LlmReplier, ToolBox, build_replier
from clawdesk.settings import AppSettings
from schemas import Reply, SkillResult, SkillStatus
from tests.agents.conftest import test_app
from tests.fakes.fixtures import Fakes
from tests.fakes.openai_server import FakeOpenAI, answer, call_tools
from tests.llm.events import skill_result

__all__ = ["test_app"]


@pytest.mark.parametrize(
    ("url", "key"),
    [("", "sk-1"), ("http://127.0.0.1:9/v1", None), ("http://127.0.0.1:9/v1", ""), ("  ", "k")],
)
def test_offline_unless_both_url_and_key_are_set(url: str, key: str | None) -> None:
    settings = AppSettings(
        llm_base_url=url, llm_api_key=SecretStr(key) if key is not None else None
    )
    assert not settings.llm_enabled
    assert build_replier(settings, None) is None


def test_deadline_is_cut_to_fit_the_stage_timeout() -> None:
    from clawdesk.llm import deadline_for

    assert deadline_for(AppSettings(llm_deadline_s=30.0, stage_timeout_s=10.0)) == 8.0
    assert deadline_for(AppSettings(llm_deadline_s=3.0, stage_timeout_s=10.0)) == 3.0


async def test_offline_mode_composes_exactly_as_before() -> None:
    from agents.reply import compose, compose_any

    result = skill_result()
    settings = AppSettings()
    assert await compose_any(result, settings, None, "r-m1") == compose(result)


async def test_llm_answer_lists_the_cited_passages_under_it(
    fake_llm: FakeOpenAI, make_replier: Callable[..., LlmReplier]
) -> None:
    from agents.reply import compose_any

    fake_llm.then(answer("5-8 business days [1]; returns within 30 days [2]."))
    out = await compose_any(skill_result(), AppSettings(), make_replier(), "r-m1")
    assert out.llm
    assert out.text == (
        "5-8 business days [1]; returns within 30 days [2].\n\n"
        "Source: [1] Shipping › How long does delivery take?; "
        "[2] Returns › How do I return an item?"
    )
    assert out.sources == ["en/shipping.md", "en/returns.md"]


async def test_chinese_reply_is_asked_for_and_labelled_in_chinese(
    fake_llm: FakeOpenAI, make_replier: Callable[..., LlmReplier]
) -> None:
    from agents.reply import compose_any

    fake_llm.then(answer("标准配送需要 5-8 个工作日 [1]。"))
    out = await compose_any(
        skill_result("寄到德国要多久?", language="zh"), AppSettings(), make_replier(), "r"
    )
    assert out.text.endswith("来源: [1] Shipping › How long does delivery take?")
    assert "Simplified Chinese" in fake_llm.requests[0]["messages"][0]["content"]


async def test_failed_llm_sends_exactly_the_offline_reply(
    fake_llm: FakeOpenAI, make_replier: Callable[..., LlmReplier]
) -> None:
    from agents.reply import compose, compose_any

    fake_llm.fail_next(1, 500)
    result = skill_result()
    out = await compose_any(result, AppSettings(), make_replier(llm_max_retries=0), "r-m1")
    assert out == compose(result)
    assert not out.llm


async def test_handoff_notice_never_goes_to_the_llm(
    fake_llm: FakeOpenAI, make_replier: Callable[..., LlmReplier]
) -> None:
    from agents.reply import compose_any

    result = skill_result(
        "I want a human",
        intent="human_agent",
        skill="handoff",
        status=SkillStatus.OK,
        data={"reason": "customer_request"},
    )
    out = await compose_any(result, AppSettings(), make_replier(), "r-m1")
    assert out.handoff
    assert fake_llm.completions == 0


async def run_reply_agent(result: SkillResult, memory: dict[str, Any]) -> Reply:
    """One skill result through the reply agent (sends mocked), and the sent reply as
    the stages that own the memory apply it: ingest (the bot's turn) and skills (a
    proposed confirmation); both tables are the dict `memory`."""
    from agents.memory_events import remember_reply
    from agents.reply import compose_reply
    from agents.skills import remember_proposal

    sent = asyncio.Event()
    with patch("agents.reply.reply_topic.send", side_effect=lambda **_: sent.set()) as send:
        async with compose_reply.test_context() as agent:
            await agent.put(result.to_bytes())
            # The agent is handed the event; its LLM call is still on the wire.
            await asyncio.wait_for(sent.wait(), 5)
    assert send.await_args is not None
    raw = send.await_args.kwargs["value"]
    with (
        patch("agents.memory_events.conversation_memory", memory),
        patch("agents.skills.conversation_dialogue", memory),
    ):
        remember_reply(raw)
        remember_proposal(raw)
    return Reply.from_bytes(raw)


@pytest.fixture()
def llm_worker(
    test_app: Any,
    pool: AsyncConnectionPool,
    toolbox: ToolBox,
    llm_settings: Callable[..., AppSettings],
    make_replier: Callable[..., LlmReplier],
) -> None:
    """Services as a worker in LLM mode has them, skills running on the fake providers."""
    from agents.skills import use_runtime
    from clawdesk import services

    services.install(
        services.Services(
            settings=llm_settings(),
            pool=pool,
            kb=None,
            nlu=None,
            shop=None,
            cache=None,
            llm=make_replier(),
        )
    )
    use_runtime(toolbox.runtime)


async def test_reply_agent_sends_the_llm_answer(llm_worker: None, fake_llm: FakeOpenAI) -> None:
    fake_llm.then(answer("Standard delivery to Germany takes 5-8 business days [1]."))
    memory: dict[str, Any] = {}
    reply = await run_reply_agent(skill_result(conversation="c1"), memory)
    assert reply.text.startswith("Standard delivery to Germany takes 5-8 business days [1].")
    assert reply.sources == ["en/shipping.md"]
    assert memory["c1"]["turns"][-1]["text"] == reply.text
    assert fake_llm.requests[0]["user"] == "c1"


async def test_refund_the_llm_proposes_runs_only_on_the_customers_yes(
    llm_worker: None, fake_llm: FakeOpenAI, fakes: Fakes
) -> None:
    from agents.skills import think

    fake_llm.then(
        call_tools(("refund", {"order": "#1001", "email": "lena.vogel@example.com"})),
        answer("Shall I refund order #1001 to your card? Please reply yes to confirm."),
    )
    memory: dict[str, Any] = {}
    asked = skill_result("I want my money back for #1001", conversation="c1", intent="oos")
    await run_reply_agent(asked, memory)
    assert not fakes.stripe.calls_to("POST", "/v1/refunds")
    pending = memory["c1"]["dialogue"]["pending"]
    assert pending["skill"] == "refund"
    assert pending["args"] == {"order": "#1001", "email": "lena.vogel@example.com"}
    assert pending["origin_event_id"] == asked.context.nlu.accepted.message.event_id

    # The customer's "yes" reaches the skills stage, which runs the refund once.
    yes = skill_result("yes", conversation="c1", intent="oos", message_id="m2").context
    _, conclusion, _ = await think(yes, memory["c1"])
    assert conclusion.skill == "refund"
    assert conclusion.status is SkillStatus.OK
    assert len(fakes.stripe.calls_to("POST", "/v1/refunds")) == 1


async def test_answer_resting_on_the_kb_alone_is_cached_per_kb_version(
    fake_llm: FakeOpenAI, make_replier: Callable[..., LlmReplier]
) -> None:
    from agents.reply import compose_any
    from clawdesk.storage.cache import LayeredCache

    cache = LayeredCache("answers-test", None, l1_ttl_s=60, l2_ttl_s=60)
    fake_llm.then(answer("5-8 business days [1]."))
    replier, settings = make_replier(), AppSettings()
    first = await compose_any(skill_result(), settings, replier, "r-1", cache=cache)
    again = await compose_any(
        skill_result("how long does shipping to germany take", message_id="m2"),
        settings,
        replier,
        "r-2",
        cache=cache,
    )
    assert fake_llm.completions == 1, "the same question is answered from the cache"
    assert (again.text, again.sources) == (first.text, first.sources)

    # Earlier turns shape the answer: such a reply is neither read from nor put in the cache.
    fake_llm.then(answer("As I said, 5-8 business days [1]."))
    follow_up = skill_result(turns=[("customer", "hi"), ("bot", "Hello!")], message_id="m3")
    out = await compose_any(follow_up, settings, replier, "r-3", cache=cache)
    assert fake_llm.completions == 2
    assert out.text.startswith("As I said")
    fresh = await compose_any(skill_result(message_id="m4"), settings, replier, "r-4", cache=cache)
    assert fresh.text == first.text, "the follow-up's answer was not cached for the question"

    # A re-ingested KB (new version) is never answered from the old version's cache.
    newer = skill_result(message_id="m5")
    newer = newer.model_copy(
        update={"context": newer.context.model_copy(update={"kb_version": "kb-2"})}
    )
    fake_llm.then(answer("Now 3-5 business days [1]."))
    updated = await compose_any(newer, settings, replier, "r-5", cache=cache)
    assert fake_llm.completions == 3
    assert updated.text.startswith("Now 3-5")
