"""refund: refund an order (all of what is left, or an amount) to the original payment
method, through Stripe. A side effect: the customer confirms first."""

from __future__ import annotations

from decimal import ROUND_HALF_UP, Decimal
from typing import Any

from clawdesk.integrations.http import ProviderError
from clawdesk.integrations.shopify import Order
from clawdesk.skills.base import Skill, SkillContext, SkillOutcome
from clawdesk.skills.builtin.orders import (
    EMAIL,
    ORDER,
    ORDER_ENTITIES,
    REMEMBERED_ORDER,
    SHOPIFY,
    STRIPE,
    chinese,
    combine,
    find_order,
    manifest,
    to_confirm,
)
from clawdesk.skills.manifest import Route
from clawdesk.skills.replies import Data, Rendered
from schemas import SkillStatus

ZERO_DECIMAL = frozenset(
    {
        "BIF",
        "CLP",
        "DJF",
        "GNF",
        "JPY",
        "KMF",
        "KRW",
        "MGA",
        "PYG",
        "RWF",
        "UGX",
        "VND",
        "VUV",
        "XAF",
        "XOF",
        "XPF",
    }
)
REFUNDABLE = ("paid", "partially_refunded")

CONFIRMATION = {
    "en": "Shall I refund {amount} {currency} for order {order} to the original "
    "payment method? Reply yes to confirm, or no to cancel.",
    "zh": "要为订单 {order} 退款 {amount} {currency}(原路退回)吗?"
    "回复“确认”或“是的”继续,回复“不”取消。",
}
TEMPLATES = {
    "en": {
        "action": "refund",
        "done": "Done: {amount} for order {order} is refunded to the original payment "
        "method (refund {refund_id}, status: {status}).",
        "declined": "OK, I won't refund order {order}.",
        "failed.not_refundable": "Order {order} can't be refunded (payment status: "
        "{financial_status}).",
        "failed.too_much": "That is more than can be refunded for order {order} "
        "(at most {refundable}).",
        "failed.already_refunded": "Order {order} has already been refunded.",
    },
    "zh": {
        "action": "办理退款",
        "done": "已完成:订单 {order} 的 {amount} 已原路退回(退款单号 {refund_id},状态:{status})。",
        "declined": "好的,不为订单 {order} 退款。",
        "failed.not_refundable": "订单 {order} 无法退款(支付状态:{financial_status})。",
        "failed.too_much": "超出订单 {order} 可退金额(最多 {refundable})。",
        "failed.already_refunded": "订单 {order} 已经退过款了。",
    },
}


def _minor(amount: Decimal, currency: str) -> int:
    exponent = 0 if currency.upper() in ZERO_DECIMAL else 2
    return int((amount * 10**exponent).to_integral_value(ROUND_HALF_UP))


def _refund_amount(order: Order, args: dict[str, Any]) -> Decimal:
    remaining = order.total_price - order.total_refunded
    return Decimal(args["amount"]) if "amount" in args else remaining


async def _refundable(ctx: SkillContext, args: dict[str, Any]) -> Order | SkillOutcome:
    found = await find_order(ctx, args, verified=True)
    if isinstance(found, SkillOutcome):
        return found
    if found.financial_status not in REFUNDABLE:
        return SkillOutcome.failed(
            "this order cannot be refunded",
            {"order": found.name, "financial_status": found.financial_status},
        )
    amount, remaining = _refund_amount(found, args), found.total_price - found.total_refunded
    if amount <= 0 or amount > remaining:
        return SkillOutcome.failed(
            "amount is more than can be refunded",
            {"order": found.name, "refundable": f"{remaining}"},
        )
    return found


async def _preview_refund(ctx: SkillContext, args: dict[str, Any]) -> str | SkillOutcome:
    ctx.providers.stripe  # noqa: B018 -- raises NotConfigured before we ask the customer
    found = await _refundable(ctx, args)
    if isinstance(found, SkillOutcome):
        return found
    value = _refund_amount(found, args)
    amount = f"{value} {found.currency}"
    if chinese(ctx):
        text = f"将为订单 {found.name} 退款 {amount},原路退回。确认吗?"
    else:
        text = f"Refund {amount} for order {found.name} to the original payment method?"
    return to_confirm(
        text, action="refund", order=found.name, amount=f"{value}", currency=found.currency
    )


async def _refund(ctx: SkillContext, args: dict[str, Any]) -> SkillOutcome:
    if not ctx.idempotency_key:
        raise ValueError("refund needs an idempotency key")
    found = await _refundable(ctx, args)
    if isinstance(found, SkillOutcome):
        return found
    stripe = ctx.providers.stripe
    intent = await stripe.find_payment_intent(found.name)
    if intent is None:
        # Paid some other way (bank transfer, a marketplace): a person refunds it.
        return SkillOutcome.not_found(
            {"order": found.name, "payment": None, "handoff": "manual_refund"},
            "no card payment found for this order",
        )
    amount = _refund_amount(found, args)
    try:
        refund = await stripe.refund(
            intent.id,
            _minor(amount, found.currency),
            args.get("reason", "requested_by_customer"),
            ctx.idempotency_key,
            metadata={
                "order_name": found.name,
                "conversation_id": ctx.conversation_id,
                "tenant_id": ctx.tenant_id,
            },
        )
    except ProviderError as exc:
        if exc.code in ("charge_already_refunded", "amount_too_large"):
            return SkillOutcome.failed(exc.message, {"order": found.name, "code": exc.code})
        raise
    return SkillOutcome.ok(
        {
            "order": found.name,
            "refund_id": refund.id,
            "amount": f"{amount} {found.currency}",
            "status": refund.status,
        }
    )


def _reply(status: SkillStatus, t: dict[str, str], data: Data, lang: str) -> Rendered | None:
    if status is SkillStatus.OK:
        return Rendered(t["done"].format(**data), [f"refund:{data['refund_id']}"])
    if status is SkillStatus.FAILED and "order" in data:
        if data.get("code") == "charge_already_refunded":
            return Rendered(t["failed.already_refunded"].format(**data))
        if "refundable" in data:
            return Rendered(t["failed.too_much"].format(**data))
        if "financial_status" in data:
            return Rendered(t["failed.not_refundable"].format(**data))
    return None


refund = Skill(
    manifest(
        "refund",
        "Refund an order (all of what is left, or an amount) to the original payment method.",
        {
            "order": ORDER,
            "email": EMAIL,
            "amount": {
                "type": "string",
                "pattern": r"^\d{1,7}(\.\d{1,2})?$",
                "description": "in the order's currency, e.g. 25.00; omitted: all",
            },
            "reason": {"enum": ["requested_by_customer", "duplicate", "fraudulent"]},
        },
        ["order"],
        needs=combine(SHOPIFY, STRIPE),
        side_effects=True,
        routes=[
            Route(
                intent="refund_request",
                entities=ORDER_ENTITIES,
                remembered=REMEMBERED_ORDER,
                ask="order",
                verify_with="email",
            )
        ],
        confirmation=CONFIRMATION,
        templates=TEMPLATES,
    ),
    _refund,
    _preview_refund,
    reply=_reply,
)
