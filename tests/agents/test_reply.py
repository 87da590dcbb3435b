"""The reply stage composes grounded replies and never invents an order status."""

from __future__ import annotations

import asyncio
from functools import partial
from unittest.mock import patch

import pytest

from schemas import KbHit, Reply, SkillStatus
from tests.llm.events import skill_result as shared_skill_result

# The stage's own defaults: a web customer asking about shipping, with one KB hit.
skill_result = partial(
    shared_skill_result,
    text="how long is shipping?",
    conversation="c1",
    hits=[
        KbHit(
            doc_id="en/shipping.md",
            title="Shipping",
            section="Delivery times",
            text="Standard delivery to Germany takes 5-8 business days.",
            score=0.7,
        )
    ],
)


def test_answerable_question_quotes_the_kb_and_cites_it():
    from agents.reply import compose

    out = compose(skill_result())
    assert "5-8 business days" in out.text
    assert out.sources == ["en/shipping.md"]
    assert "Shipping › Delivery times" in out.text


def test_weak_retrieval_asks_to_clarify_instead_of_answering():
    from agents.reply import compose

    out = compose(skill_result(answerable=False))
    assert "rephrase" in out.text
    assert out.sources == []


@pytest.mark.parametrize(
    ("status", "data", "expected"),
    [
        (
            SkillStatus.OK,
            {
                "order": "#1002",
                "financial_status": "paid",
                "fulfillment_status": "fulfilled",
                "total": "313.90 USD",
                "carrier": "UPS",
                "tracking_number": "1Z999",
                "shipment_status": "in_transit",
                "cancelled": False,
            },
            "#1002",
        ),
        (SkillStatus.NOT_FOUND, {"reference": "#9999"}, "couldn't find an order #9999"),
        (SkillStatus.NEEDS_INPUT, {}, "order number"),
    ],
)
def test_order_replies_quote_only_the_shop(status, data, expected):
    from agents.reply import compose

    out = compose(
        skill_result(intent="order_status", skill="order_status", status=status, data=data)
    )
    assert expected in out.text
    if status is not SkillStatus.OK:
        assert "fulfil" not in out.text


def test_chinese_customer_gets_a_chinese_handoff_notice():
    from agents.reply import compose

    out = compose(
        skill_result(
            text="转人工",
            intent="human_agent",
            language="zh",
            skill="handoff",
            status=SkillStatus.OK,
        ),
    )
    assert out.handoff
    assert "人工客服" in out.text


async def test_compose_reply_agent_sends_one_reply(test_app, fake_services):
    from agents.reply import compose_reply

    result = skill_result()
    sent = asyncio.Event()
    with patch("agents.reply.reply_topic.send", side_effect=lambda **_: sent.set()) as send:
        async with compose_reply.test_context() as agent:
            await agent.put(result.to_bytes())
            # put() hands the event over; the reply (a decision stored first) follows.
            await asyncio.wait_for(sent.wait(), 5)
    assert send.await_count == 1
    reply = Reply.from_bytes(send.await_args.kwargs["value"])
    assert reply.reply_id == f"r-{result.context.nlu.accepted.message.event_id}"
    assert send.await_args.kwargs["key"] == b"c1"
    assert reply.proposed is None


async def test_compose_reply_agent_dead_letters_garbage(test_app, fake_services):
    from agents.reply import compose_reply

    sent = asyncio.Event()
    with (
        patch("agents.reply.reply_topic.send", side_effect=lambda **_: sent.set()) as send,
        patch("agents.guard.dead_letter") as dead,
    ):
        async with compose_reply.test_context() as agent:
            await agent.put(b"{broken")
            await agent.put(skill_result().to_bytes())
            await asyncio.wait_for(sent.wait(), 5)
    assert dead.await_count == 1
    assert dead.await_args.args[0] == "reply"
    assert send.await_count == 1, "the event after the bad one is still answered"


def test_kb_markdown_becomes_plain_chat_text():
    from agents.reply import plain

    assert plain("- **PayPal**, and\n- __Alipay__") == "• PayPal, and\n• Alipay"


def test_small_talk_follows_the_nlu_stages_decision_alone():
    # A model stored before calibration passes a greeting at 0.6 (its floor is 0.45);
    # the reply must not judge that confidence again against the calibrated 0.90.
    from agents.reply import compose

    out = compose(skill_result(text="hi", intent="greeting", confidence=0.6))
    assert out.text == compose(skill_result(text="hi", intent="greeting", confidence=1.0)).text
    assert out.sources == [] and not out.handoff
    assert "5-8 business days" not in out.text  # the greeting, not the KB hit


def test_only_a_short_message_with_nothing_done_may_give_way_to_a_burst() -> None:
    from agents.reply import may_merge

    hi = shared_skill_result("hi", intent="greeting", answerable=False)
    assert may_merge(hi, 3.0)
    assert not may_merge(hi, 0.0)  # merging is off
    assert not may_merge(shared_skill_result("How long does shipping to Germany take?"), 3.0)
    assert not may_merge(shared_skill_result("how long is shipping?"), 3.0)  # a question
    assert not may_merge(shared_skill_result("accept paypal"), 3.0)  # the KB answers it
    asked = shared_skill_result(
        "my order", intent="order_status", skill="order_status", status=SkillStatus.NEEDS_INPUT
    )
    assert may_merge(asked, 3.0)  # "which order?" is superseded by "1002"
    done = shared_skill_result("yes", skill="refund", status=SkillStatus.OK)
    assert not may_merge(done, 3.0)  # what a skill did is always told
    declined = shared_skill_result("no", skill="refund", status=SkillStatus.SKIPPED)
    assert not may_merge(declined, 3.0)
