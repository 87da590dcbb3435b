"""cancel_order: cancel an order that has not shipped yet, in Shopify. A side effect:
the customer confirms first."""

from __future__ import annotations

from typing import Any

from clawdesk.integrations.shopify import Order
from clawdesk.skills.base import Skill, SkillContext, SkillOutcome
from clawdesk.skills.builtin.orders import (
    EMAIL,
    ORDER,
    ORDER_ENTITIES,
    REMEMBERED_ORDER,
    SHOPIFY,
    chinese,
    find_order,
    manifest,
    to_confirm,
)
from clawdesk.skills.manifest import Route
from clawdesk.skills.replies import Data, Rendered
from schemas import SkillStatus

CONFIRMATION = {
    "en": "Shall I cancel order {order} ({items}, {amount} {currency})? "
    "Reply yes to confirm, or no to keep it.",
    "zh": "要取消订单 {order}({items},{amount} {currency})吗?"
    "回复“确认”或“是的”继续,回复“不”保留订单。",
}
TEMPLATES = {
    "en": {
        "action": "cancel",
        "done": "Done: order {order} is cancelled.",
        "done.already": "Order {order} was already cancelled.",
        "declined": "OK, order {order} stays as it is.",
        "failed.shipped": "Order {order} has already shipped, so it can't be cancelled; you "
        "can return it instead.",
    },
    "zh": {
        "action": "取消订单",
        "done": "已完成:订单 {order} 已取消。",
        "done.already": "订单 {order} 之前已经取消了。",
        "declined": "好的,订单 {order} 保持不变。",
        "failed.shipped": "订单 {order} 已发货,无法取消;您可以申请退货。",
    },
}


async def _cancellable(ctx: SkillContext, args: dict[str, Any]) -> Order | SkillOutcome:
    found = await find_order(ctx, args, verified=True)
    if isinstance(found, SkillOutcome) or found.cancelled:
        return found
    if found.fulfillment_status in ("fulfilled", "partial"):
        return SkillOutcome.failed(
            "the order has already shipped; it can be returned instead",
            {"order": found.name, "reason": "fulfilled"},
        )
    return found


async def _preview_cancel(ctx: SkillContext, args: dict[str, Any]) -> str | SkillOutcome:
    ctx.providers.shopify  # noqa: B018 -- the demo shop is read-only: no Shopify, no cancel
    found = await _cancellable(ctx, args)
    if isinstance(found, SkillOutcome):
        return found
    if found.cancelled:
        return SkillOutcome.ok({"order": found.name, "cancelled": True, "already": True})
    items = [i.title for i in found.line_items]
    total = f"{found.total_price} {found.currency}"
    if chinese(ctx):
        text = f"将取消订单 {found.name}({', '.join(items)},{total})。确认吗?"
    else:
        text = f"Cancel order {found.name} ({', '.join(items)}, {total})?"
    return to_confirm(
        text,
        action="cancel_order",
        order=found.name,
        items=items,
        amount=f"{found.total_price}",
        currency=found.currency,
    )


async def _cancel_order(ctx: SkillContext, args: dict[str, Any]) -> SkillOutcome:
    if not ctx.idempotency_key:
        raise ValueError("cancel_order needs an idempotency key")
    found = await _cancellable(ctx, args)
    if isinstance(found, SkillOutcome):
        return found
    if found.cancelled:
        return SkillOutcome.ok({"order": found.name, "cancelled": True, "already": True})
    order = await ctx.providers.shopify.cancel_order(
        found.id, ctx.idempotency_key, args.get("reason", "customer")
    )
    return SkillOutcome.ok(
        {
            "order": order.name,
            "cancelled": order.cancelled,
            "already": False,
            "financial_status": order.financial_status,
        }
    )


def _reply(status: SkillStatus, t: dict[str, str], data: Data, lang: str) -> Rendered | None:
    if status is SkillStatus.OK:
        key = "done.already" if data.get("already") else "done"
        return Rendered(t[key].format(**data), [f"order:{data['order']}"])
    if status is SkillStatus.FAILED and data.get("reason") == "fulfilled" and "order" in data:
        return Rendered(t["failed.shipped"].format(**data))
    return None


cancel_order = Skill(
    manifest(
        "cancel_order",
        "Cancel an order that has not shipped yet.",
        {"order": ORDER, "email": EMAIL, "reason": {"enum": ["customer", "other"]}},
        ["order"],
        needs=SHOPIFY,
        side_effects=True,
        routes=[
            Route(
                intent="cancel_order",
                entities=ORDER_ENTITIES,
                remembered=REMEMBERED_ORDER,
                ask="order",
                verify_with="email",
            )
        ],
        confirmation=CONFIRMATION,
        templates=TEMPLATES,
    ),
    _cancel_order,
    _preview_cancel,
    reply=_reply,
)
