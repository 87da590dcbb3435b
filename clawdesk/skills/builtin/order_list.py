"""order_list: the signed-in customer's recent orders (channel-verified e-mail only,
never one typed in the chat)."""

from __future__ import annotations

from typing import Any

from clawdesk.skills.base import Skill, SkillContext, SkillOutcome
from clawdesk.skills.builtin.orders import SHOPIFY, manifest, summarise_order
from clawdesk.skills.manifest import Route
from clawdesk.skills.render import localise
from clawdesk.skills.replies import Data, Rendered
from schemas import SkillStatus

TEMPLATES = {
    "en": {
        "action": "look up orders",
        "done": "Your recent orders: {orders}.",
        "done.more": " (the {shown} newest of {count})",
        "done.item": "{order} ({total}, {fulfillment_status})",
        "done.none": "I couldn't find any orders for your e-mail address.",
    },
    "zh": {
        "action": "查询订单",
        "done": "您最近的订单:{orders}。",
        "done.more": "(共 {count} 个,显示最新 {shown} 个)",
        "done.item": "{order}({total},{fulfillment_status})",
        "done.none": "没有找到您邮箱下的订单。",
    },
}


async def _order_list(ctx: SkillContext, args: dict[str, Any]) -> SkillOutcome:
    if not ctx.customer_email:
        return SkillOutcome.needs_input(
            "sign-in needed: the customer's e-mail is not verified", {"missing": "sign_in"}
        )
    orders = await ctx.order_source.list_orders(ctx.customer_email)
    limit = int(args.get("limit", 5))
    return SkillOutcome.ok(
        {"orders": [summarise_order(o) for o in orders[:limit]], "count": len(orders)}
    )


def _reply(status: SkillStatus, t: dict[str, str], data: Data, lang: str) -> Rendered | None:
    if status is not SkillStatus.OK:
        return None
    orders = data.get("orders") or []
    if not orders:
        return Rendered(t["done.none"])
    items = "; ".join(t["done.item"].format(**localise(o, lang)) for o in orders)
    text = t["done"].format(orders=items)
    if data.get("count", len(orders)) > len(orders):
        text += t["done.more"].format(shown=len(orders), count=data["count"])
    return Rendered(text, [f"order:{o['order']}" for o in orders])


order_list = Skill(
    manifest(
        "order_list",
        "List the signed-in customer's recent orders.",
        {"limit": {"type": "integer", "minimum": 1, "maximum": 20}},
        needs=SHOPIFY,
        # "Where are my orders?" naming none, from a customer the channel vouches for.
        routes=[Route(intent="order_status", verified_only=True)],
        templates=TEMPLATES,
    ),
    _order_list,
    reply=_reply,
)
