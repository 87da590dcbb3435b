"""The skills stage under Faust's test_context: skills run through the runner against the
fake providers (real HTTP), confirmation state lives in conversation memory, handoffs
are emitted. Topic sends and Postgres are mocked; the dialogue table is a dict."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Iterator
from typing import Any
from unittest.mock import AsyncMock, patch

import pytest

from clawdesk.integrations import Integrations, ProviderSettings
from clawdesk.integrations.demo_shop import DemoShop
from clawdesk.nlu.entities import extract_entities
from clawdesk.services import packaged_data
from clawdesk.skills import MemoryAudit
from clawdesk.skills.registry import load_registry
from clawdesk.skills.worker_skills import AllowLists, SkillRuntime
from clawdesk.storage.cache import LayeredCache
from schemas import (
    AcceptedMessage,
    Channel,
    ConversationSnapshot,
    Entity,
    Handoff,
    InboundMessage,
    NluResult,
    RetrievalContext,
    SkillResult,
    SkillStatus,
)
from tests.fakes.fixtures import Fakes, fake_servers, fakes, provider_settings

__all__ = ["fake_servers", "fakes", "provider_settings"]
MIKE = "mike.turner@example.com"


def context(
    text: str,
    intent: str,
    conversation: str = "c-skills",
    *,
    language: str = "en",
    answerable: bool = False,
    message: InboundMessage | None = None,
) -> RetrievalContext:
    """The retrieve stage's output for a message (entities as the nlu stage finds them)."""
    msg = message or InboundMessage(
        conversation_id=conversation,
        tenant_id="demo",
        channel=Channel.WEB,
        channel_message_id=f"m-{abs(hash(text))}",
        customer_id="visitor-1",
        text=text,
    )
    acc = AcceptedMessage(**msg.lineage(), message=msg, memory=ConversationSnapshot())
    entities = [Entity(kind=e.kind, value=e.value) for e in extract_entities(text)]
    nlu = NluResult(
        **msg.lineage(),
        accepted=acc,
        intent=intent,
        confidence=0.9,
        entities=entities,
        language=language,
        model_version="v1",
    )
    return RetrievalContext(
        **msg.lineage(), nlu=nlu, hits=[], answerable=answerable, kb_version="kb-1"
    )


@pytest.fixture()
async def runtime(
    fake_services: Any, provider_settings: ProviderSettings
) -> AsyncIterator[SkillRuntime]:
    from agents.skills import use_runtime

    rt = SkillRuntime(
        load_registry(),
        Integrations(provider_settings),
        MemoryAudit(),
        AllowLists.fixed(load_registry().names()),
        cache=LayeredCache("skills-stage", None, l1_ttl_s=60, l2_ttl_s=60),
        demo_shop=DemoShop.from_file(packaged_data("shop", "orders.json")),
    )
    use_runtime(rt)
    yield rt
    await rt.aclose()


class Stage:
    """The mocked outside of the stage: sends, memory, Postgres."""

    def __init__(self) -> None:
        self.memory: dict[str, Any] = {}
        self.arrived = asyncio.Event()
        self.results = AsyncMock(side_effect=lambda *_, **__: self.arrived.set())
        self.handoffs = AsyncMock()
        self.status = AsyncMock()

    async def wait_for_results(self, n: int) -> None:
        """Until the stage has sent `n` results: `put` returns when the agent takes an
        event, not when it has finished with it."""
        async with asyncio.timeout(10):
            while self.results.await_count < n:
                self.arrived.clear()
                await self.arrived.wait()

    def sent(self) -> list[SkillResult]:
        return [SkillResult.from_bytes(c.kwargs["value"]) for c in self.results.await_args_list]

    def handed_off(self) -> list[Handoff]:
        return [Handoff.from_bytes(c.kwargs["value"]) for c in self.handoffs.await_args_list]


@pytest.fixture()
def stage(test_app: Any) -> Iterator[Stage]:
    s = Stage()
    with (
        patch("agents.skills.skill_result_topic.send", s.results),
        patch("agents.skills.handoff_topic.send", s.handoffs),
        patch("agents.skills.conversation_dialogue", s.memory),
        patch("agents.skills.db.set_conversation_status", s.status),
    ):
        yield s


async def put(stage: Stage, *contexts: RetrievalContext) -> None:
    """Feed the agent and wait until it has sent a result for each event."""
    from agents.skills import run_skill

    async with run_skill.test_context() as agent:
        for ctx in contexts:
            await agent.put(ctx.to_bytes())
        await stage.wait_for_results(len(contexts))


async def test_refund_asks_then_runs_once_even_when_the_yes_is_redelivered(
    stage: Stage, runtime: SkillRuntime, fakes: Fakes
) -> None:
    ask = context(f"I want a refund for order #1002, my email is {MIKE}", "refund_request")
    yes = context("yes", "oos")
    await put(stage, ask, yes, yes)  # the confirming event twice: at-least-once delivery
    asked, done, again = stage.sent()
    assert asked.status is SkillStatus.NEEDS_CONFIRMATION
    assert (asked.data["order"], asked.data["amount"]) == ("#1002", "313.90")
    assert done.status is SkillStatus.OK and done.data["amount"] == "313.90 USD"
    assert again.data == done.data
    assert len(fakes.stripe.calls_to("POST", "/v1/refunds")) == 1
    assert len(fakes.stripe.refunds) == 1
    dialogue = stage.memory["c-skills"]["dialogue"]
    assert dialogue["pending"] is None
    assert dialogue["last_action"]["origin_event_id"] == ask.nlu.accepted.message.event_id


async def test_no_declines_and_nothing_is_refunded(
    stage: Stage, runtime: SkillRuntime, fakes: Fakes
) -> None:
    await put(
        stage,
        context(f"refund order #1002 please, {MIKE}", "refund_request"),
        context("不用了", "oos", language="zh"),
    )
    _, declined = stage.sent()
    assert declined.status is SkillStatus.SKIPPED
    assert declined.data["dialogue"] == "declined"
    assert fakes.stripe.calls_to("POST", "/v1/refunds") == []


async def test_missing_email_is_asked_for_then_the_refund_is_offered(
    stage: Stage, runtime: SkillRuntime
) -> None:
    await put(
        stage,
        context("I want a refund for order #1002", "refund_request"),
        context(f"sure, it's {MIKE}", "oos"),
    )
    asked, offered = stage.sent()
    assert (asked.status, asked.data["missing"]) == (SkillStatus.NEEDS_INPUT, "email")
    assert offered.status is SkillStatus.NEEDS_CONFIRMATION


async def test_order_follow_up_uses_the_remembered_order(
    stage: Stage, runtime: SkillRuntime
) -> None:
    await put(
        stage,
        context("What's the status of order #1002?", "order_status"),
        context("where is it now?", "track_shipment"),
    )
    status, tracking = stage.sent()
    assert status.status is SkillStatus.OK and status.data["order"] == "#1002"
    assert tracking.skill == "track_shipment" and tracking.data["order"] == "#1002"


@pytest.mark.parametrize(("text", "language"), [("转人工", "zh"), ("get me a human", "en")])
async def test_asking_for_a_human_hands_off(
    stage: Stage, runtime: SkillRuntime, fakes: Fakes, text: str, language: str
) -> None:
    ctx = context(text, "human_agent", language=language)
    await put(stage, ctx)
    [result] = stage.sent()
    [handoff] = stage.handed_off()
    assert (result.skill, result.data["reason"]) == ("handoff", "customer_request")
    assert handoff.reason == "customer_request" and handoff.last_message == text
    # The memory's handoff flag is the ingest stage's to set, from the handoff event.
    assert "handoff" not in stage.memory["c-skills"] or not stage.memory["c-skills"]["handoff"]
    stage.status.assert_awaited_once()
    assert stage.status.await_args.args[1:] == ("c-skills", "human")
    # Zendesk is configured, yet the ticket is the handoff agent's to open, from the event.
    assert fakes.zendesk.tickets == {}


async def test_a_redelivered_message_hands_off_with_the_same_event_id(
    stage: Stage, runtime: SkillRuntime
) -> None:
    ctx = context("this is ridiculous and useless", "oos")
    await put(stage, ctx, ctx)
    first, second = stage.handed_off()
    assert first.event_id == second.event_id
    assert first.reason == "negative_sentiment"


async def test_two_unclear_messages_hand_off(stage: Stage, runtime: SkillRuntime) -> None:
    await put(stage, context("asdkjh", "oos"), context("qwe zxc", "oos"))
    clarify, handoff = stage.sent()
    assert clarify.skill is None and clarify.status is SkillStatus.SKIPPED
    assert handoff.data["reason"] == "low_confidence"


async def test_unavailable_refund_in_the_demo_says_so(stage: Stage, fake_services: Any) -> None:
    from agents.reply import compose
    from agents.skills import use_runtime

    demo = SkillRuntime(
        load_registry(),
        Integrations(ProviderSettings()),
        MemoryAudit(),
        AllowLists.fixed(load_registry().names()),
        demo_shop=DemoShop.from_file(packaged_data("shop", "orders.json")),
    )
    use_runtime(demo)
    await put(stage, context(f"refund order #1002, {MIKE}", "refund_request"))
    [result] = stage.sent()
    assert result.status is SkillStatus.UNAVAILABLE
    reply = compose(result)
    assert "can't refund from here right now" in reply.text and "human" in reply.text


async def test_a_verified_email_lists_the_customers_orders(
    stage: Stage, runtime: SkillRuntime
) -> None:
    msg = InboundMessage(
        conversation_id="c-inapp",
        tenant_id="demo",
        channel=Channel.INAPP,
        channel_message_id="m-list",
        customer_id="app-user-7",
        text="where are my orders?",
        metadata={"app.email": "lena.vogel@example.com"},
    )
    await put(stage, context(msg.text, "order_status", message=msg))
    [result] = stage.sent()
    assert result.skill == "order_list"
    assert [o["order"] for o in result.data["orders"]] == ["#1001"]
