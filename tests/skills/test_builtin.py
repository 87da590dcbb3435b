"""The built-in skills against the fake providers over HTTP."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

import pytest
from pydantic import SecretStr

from clawdesk.integrations import Integrations, ProviderSettings
from clawdesk.skills import MemoryAudit, OutcomeStatus, SkillContext, SkillOutcome, run_skill
from clawdesk.skills.builtin import (
    BUILTIN_SKILLS,
    cancel_order,
    create_ticket,
    crm_lookup,
    handoff,
    order_list,
    order_status,
    refund,
    track_shipment,
)
from clawdesk.skills.dialogue import Decision, DialogueState, Policy, Turn, conclude
from schemas import SkillStatus
from tests.fakes import shopify
from tests.fakes.fixtures import Fakes

Ctx = Callable[..., SkillContext]
ALL = {s.name for s in BUILTIN_SKILLS}


async def act(skill: Any, ctx: SkillContext, args: dict[str, Any], key: str) -> SkillOutcome:
    """Run a side-effecting skill as the pipeline does once the customer confirmed."""
    return await run_skill(
        skill,
        ctx,
        args,
        tenant_allow_list=ALL,
        confirmed=True,
        idempotency_key=key,
        audit=MemoryAudit(),
    )


async def test_order_status(make_ctx: Ctx) -> None:
    outcome = await order_status.run(make_ctx(), {"order": "ORD-1002"})
    assert outcome.status is OutcomeStatus.OK
    assert outcome.data["order"] == "#1002"
    assert outcome.data["total"] == "313.90 USD"
    assert outcome.data["shipment_status"] == "in_transit"
    assert "email" not in outcome.data


@pytest.mark.parametrize(
    ("args", "email", "status"),
    [
        ({"order": "#9999"}, None, OutcomeStatus.NOT_FOUND),
        ({"order": "#1002"}, "lena.vogel@example.com", OutcomeStatus.NOT_FOUND),
        ({"order": "#1002", "email": "someone@example.com"}, None, OutcomeStatus.NOT_FOUND),
        ({"order": "latest"}, None, OutcomeStatus.NEEDS_INPUT),
    ],
)
async def test_order_status_does_not_show_other_peoples_orders(
    make_ctx: Ctx, args: dict[str, Any], email: str | None, status: OutcomeStatus
) -> None:
    outcome = await order_status.run(make_ctx(customer_email=email), args)
    assert outcome.status is status
    assert "total" not in outcome.data


async def test_order_list_needs_a_verified_email(make_ctx: Ctx) -> None:
    anonymous = await order_list.run(make_ctx(), {})
    signed_in = await order_list.run(make_ctx(customer_email="lena.vogel@example.com"), {})
    assert anonymous.status is OutcomeStatus.NEEDS_INPUT
    assert signed_in.status is OutcomeStatus.OK
    assert [o["order"] for o in signed_in.data["orders"]] == ["#1001"]


@pytest.mark.parametrize(
    ("args", "expected"),
    [
        ({"order": "#1009"}, {"source": "dhl", "status": "transit", "location": "Sydney"}),
        ({"tracking_number": "7734019265"}, {"source": "dhl", "status": "delivered"}),
        ({"order": "#1002"}, {"source": "shopify", "status": "in_transit"}),
        ({"order": "#1005"}, {"shipped": False, "fulfillment_status": "unfulfilled"}),
    ],
)
async def test_track_shipment(
    make_ctx: Ctx, args: dict[str, Any], expected: dict[str, Any]
) -> None:
    outcome = await track_shipment.run(make_ctx(), args)
    assert outcome.status is OutcomeStatus.OK
    assert expected.items() <= outcome.data.items()


async def test_unknown_tracking_number_is_not_found(make_ctx: Ctx) -> None:
    outcome = await track_shipment.run(make_ctx(), {"tracking_number": "JD0000000000"})
    assert outcome.status is OutcomeStatus.NOT_FOUND


async def test_partial_refund_in_minor_units(make_ctx: Ctx, fakes: Fakes) -> None:
    ctx = make_ctx(customer_email="mike.turner@example.com", conversation_id="conv-9")
    outcome = await act(refund, ctx, {"order": "1002", "amount": "25.50"}, "k-partial")
    assert outcome.status is OutcomeStatus.OK
    [made] = fakes.stripe.refunds.values()
    assert (made["amount"], made["currency"], made["reason"]) == (
        2550,
        "usd",
        "requested_by_customer",
    )
    assert made["metadata"] == {
        "order_name": "#1002",
        "conversation_id": "conv-9",
        "tenant_id": "demo",
    }


@pytest.mark.parametrize(
    ("order", "email", "amount", "status"),
    [
        ("#1001", None, None, OutcomeStatus.NEEDS_INPUT),  # who is asking?
        ("#1001", "mike.turner@example.com", None, OutcomeStatus.NOT_FOUND),
        ("#1001", "lena.vogel@example.com", "89.01", OutcomeStatus.FAILED),
        ("#1007", "camille.martin@example.fr", None, OutcomeStatus.FAILED),  # refunded
        ("#1004", "liuyang@example.cn", None, OutcomeStatus.FAILED),  # not paid yet
    ],
)
async def test_refund_is_refused_before_stripe_is_called(
    make_ctx: Ctx,
    fakes: Fakes,
    order: str,
    email: str | None,
    amount: str | None,
    status: OutcomeStatus,
) -> None:
    args = {"order": order, **({"amount": amount} if amount else {})}
    outcome = await act(refund, make_ctx(customer_email=email), args, f"k-{order}")
    assert outcome.status is status
    assert fakes.stripe.calls_to("POST", "/v1/refunds") == []


async def test_refund_preview_in_chinese(make_ctx: Ctx) -> None:
    outcome = await run_skill(
        refund,
        make_ctx(customer_email="wangfang@example.cn", language="zh"),
        {"order": "1003"},
        tenant_allow_list=ALL,
        confirmed=False,
        idempotency_key="k-zh",
        audit=MemoryAudit(),
    )
    assert outcome.message == "将为订单 #1003 退款 159.00 CNY,原路退回。确认吗?"


async def test_cancel_order(make_ctx: Ctx, fakes: Fakes) -> None:
    ctx = make_ctx(customer_email="liuyang@example.cn")
    first = await act(cancel_order, ctx, {"order": "#1004"}, "k-cancel")
    again = await act(cancel_order, ctx, {"order": "#1004"}, "k-cancel-2")  # a new request
    assert first.status is OutcomeStatus.OK and first.data["already"] is False
    assert again.status is OutcomeStatus.OK and again.data["already"] is True
    assert fakes.shopify.cancellations == [6231458710004]


async def test_cancelling_a_shipped_order_suggests_a_return(make_ctx: Ctx, fakes: Fakes) -> None:
    outcome = await act(
        cancel_order,
        make_ctx(customer_email="lena.vogel@example.com"),
        {"order": "#1001"},
        "k-shipped",
    )
    assert outcome.status is OutcomeStatus.FAILED
    assert outcome.data["reason"] == "fulfilled"
    assert fakes.shopify.cancellations == []


async def test_crm_lookup(make_ctx: Ctx) -> None:
    found = await crm_lookup.run(make_ctx(customer_email="lena.vogel@example.com"), {})
    missing = await crm_lookup.run(make_ctx(), {"email": "nobody@example.com"})
    assert found.status is OutcomeStatus.OK and found.data["firstname"] == "Lena"
    assert missing.status is OutcomeStatus.NOT_FOUND


async def test_create_ticket_once_per_conversation(make_ctx: Ctx, fakes: Fakes) -> None:
    ctx = make_ctx(customer_email="lena.vogel@example.com", customer_name="Lena Vogel")
    args = {"subject": "Broken earbuds", "comment": "Left bud is silent", "tags": ["warranty"]}
    first = await create_ticket.run(ctx, args)
    second = await create_ticket.run(ctx, args)
    assert first.data["ticket_id"] == second.data["ticket_id"]
    [ticket] = fakes.zendesk.tickets.values()
    assert ticket["external_id"] == "conv-1"
    assert ticket["tags"] == ["clawdesk", "tenant_demo", "warranty"]


@pytest.mark.parametrize("zendesk", [True, False], ids=["zendesk", "no_ticket_system"])
async def test_handoff_decides_and_leaves_the_ticket_to_the_handoff_agent(
    make_ctx: Ctx, fakes: Fakes, zendesk: bool
) -> None:
    ctx = make_ctx()
    if not zendesk:
        settings = ProviderSettings(shopify_url="http://x", shopify_token=SecretStr(shopify.TOKEN))
        ctx = make_ctx(integrations=Integrations(settings))
    outcome = await handoff.run(ctx, {"reason": "angry", "summary": "wants a manager"})
    assert outcome.status is OutcomeStatus.OK
    assert outcome.data == {"handoff": "angry", "reason": "angry", "summary": "wants a manager"}
    # One code path opens tickets: the handoff agent (with retries and metrics), never this.
    assert fakes.zendesk.tickets == {}


async def test_the_handoff_skills_decision_makes_the_skills_stage_hand_off(make_ctx: Ctx) -> None:
    outcome = await run_skill(
        handoff,
        make_ctx(),
        {"reason": "VIP customer"},
        tenant_allow_list=ALL,
        confirmed=False,
        idempotency_key=None,
        audit=MemoryAudit(),
    )
    t = Turn("e1", "I want a person", "oos", datetime(2026, 1, 1, tzinfo=UTC))
    decision = Decision(DialogueState(), "handoff", {"reason": "VIP customer"}, run=True)
    status = SkillStatus(outcome.status.value)
    conclusion = conclude(t, decision, Policy(), status, outcome.data)
    assert (conclusion.skill, conclusion.handoff) == ("handoff", "vip_customer")


async def test_unconfigured_provider_makes_a_skill_unavailable(make_ctx: Ctx) -> None:
    outcome = await run_skill(
        crm_lookup,
        make_ctx(integrations=Integrations(ProviderSettings())),
        {"email": "lena.vogel@example.com"},
        tenant_allow_list=ALL,
        confirmed=False,
        idempotency_key=None,
        audit=MemoryAudit(),
    )
    assert outcome.status is OutcomeStatus.UNAVAILABLE
    assert "hubspot is not configured" in outcome.message


async def test_nothing_to_confirm_when_the_action_cannot_happen(
    make_ctx: Ctx, fakes: Fakes
) -> None:
    ctx = make_ctx(customer_email="lena.vogel@example.com")
    shipped = await run_skill(
        cancel_order,
        ctx,
        {"order": "#1001"},
        tenant_allow_list=ALL,
        confirmed=False,
        idempotency_key="k-ask",
        audit=MemoryAudit(),
    )
    assert shipped.status is OutcomeStatus.FAILED and shipped.data["reason"] == "fulfilled"
    assert fakes.shopify.cancellations == []
