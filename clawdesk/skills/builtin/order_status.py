"""order_status: the status of one order, by its number."""

from __future__ import annotations

from typing import Any

from clawdesk.skills.base import Skill, SkillContext, SkillOutcome
from clawdesk.skills.builtin.orders import (
    EMAIL,
    ORDER,
    ORDER_ENTITIES,
    REMEMBERED_ORDER,
    SHOPIFY,
    find_order,
    manifest,
    summarise_order,
)
from clawdesk.skills.manifest import Route
from clawdesk.skills.replies import Data, Rendered
from schemas import SkillStatus

TEMPLATES = {
    "en": {
        "action": "look up orders",
        "done": "Order {order}: payment {financial_status}, fulfilment {fulfillment_status}"
        ", total {total}.",
        "done.tracking": " Shipped with {carrier}, tracking number {tracking_number}"
        " (status: {shipment_status}).",
        "done.cancelled": " This order was cancelled.",
    },
    "zh": {
        "action": "查询订单",
        "done": "订单 {order}:支付状态 {financial_status},履约状态 {fulfillment_status},"
        "金额 {total}。",
        "done.tracking": "已由 {carrier} 发货,运单号 {tracking_number}(状态:{shipment_status})。",
        "done.cancelled": "该订单已取消。",
    },
}


async def _order_status(ctx: SkillContext, args: dict[str, Any]) -> SkillOutcome:
    found = await find_order(ctx, args, verified=False)
    if isinstance(found, SkillOutcome):
        return found
    return SkillOutcome.ok(summarise_order(found))


def _reply(status: SkillStatus, t: dict[str, str], data: Data, lang: str) -> Rendered | None:
    if status is not SkillStatus.OK:
        return None
    text = t["done"].format(**data)
    if data.get("tracking_number"):
        text += t["done.tracking"].format(**data)
    if data.get("cancelled"):
        text += t["done.cancelled"]
    return Rendered(text, [f"order:{data['order']}"])


order_status = Skill(
    manifest(
        "order_status",
        "Look up the status of one order by its number.",
        {"order": ORDER, "email": EMAIL},
        ["order"],
        needs=SHOPIFY,
        routes=[
            Route(
                intent="order_status",
                entities=ORDER_ENTITIES,
                remembered=REMEMBERED_ORDER,
                ask="order",
            )
        ],
        templates=TEMPLATES,
    ),
    _order_status,
    reply=_reply,
)
