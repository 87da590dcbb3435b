"""track_shipment: a parcel by tracking number, or the parcel of an order (DHL live
tracking where there is a DHL account, else the shop's fulfilment record)."""

from __future__ import annotations

from typing import Any

from clawdesk.integrations.http import NotFound
from clawdesk.integrations.providers import NotConfigured
from clawdesk.integrations.shopify import Order
from clawdesk.skills.base import OutcomeStatus, Skill, SkillContext, SkillOutcome
from clawdesk.skills.builtin.orders import (
    DHL,
    EMAIL,
    ORDER,
    REMEMBERED_ORDER,
    SHOPIFY,
    combine,
    find_order,
    manifest,
    owns,
)
from clawdesk.skills.manifest import Route
from clawdesk.skills.render import needs_input_text
from clawdesk.skills.replies import Data, Rendered
from schemas import SkillStatus

TEMPLATES = {
    "en": {
        "action": "track parcels",
        "done.unshipped": "Order {order} hasn't shipped yet (fulfilment: {fulfillment_status}).",
        "done.shop": "Order {order} was shipped with {carrier}, tracking number "
        "{tracking_number} (status: {status}).",
        "done.carrier": "Parcel {tracking_number} ({carrier}): {summary}.",
        "done.where": "{description} in {location}",
        "done.eta": " Expected delivery: {estimated_delivery}.",
    },
    "zh": {
        "action": "查询物流",
        "done.unshipped": "订单 {order} 尚未发货(履约状态:{fulfillment_status})。",
        "done.shop": "订单 {order} 已由 {carrier} 发货,运单号 {tracking_number}(状态:{status})。",
        "done.carrier": "包裹 {tracking_number}({carrier}):{summary}。",
        "done.where": "{description}(位置:{location})",
        "done.eta": " 预计送达:{estimated_delivery}。",
    },
}


async def _track_dhl(ctx: SkillContext, number: str) -> SkillOutcome:
    try:
        shipment = await ctx.tracker.track(number, language=ctx.language[:2] or "en")
    except NotFound:
        return SkillOutcome.not_found({"tracking_number": number})
    status = shipment.status
    return SkillOutcome.ok(
        {
            "carrier": "DHL",
            "tracking_number": number,
            "status": status.status_code,
            "description": status.description,
            "location": status.location,
            "estimated_delivery": (
                shipment.estimated_delivery.isoformat() if shipment.estimated_delivery else None
            ),
            "events": [e.model_dump(mode="json") for e in shipment.events[:5]],
            "source": "dhl",
        }
    )


async def _order_shipping(ctx: SkillContext, number: str) -> Order | None:
    """The order the shop shipped this parcel with, where the shop can tell."""
    try:
        source = ctx.order_source
    except NotConfigured:
        return None
    lookup = getattr(source, "find_by_tracking_number", None)
    return None if lookup is None else await lookup(number)


async def _track_number(ctx: SkillContext, number: str) -> SkillOutcome:
    """A parcel by its tracking number: the shop's record of it (live from DHL for DHL
    parcels when there is a DHL account), else DHL, else not found."""
    order = await _order_shipping(ctx, number)
    if order is None:
        try:
            return await _track_dhl(ctx, number)
        except NotConfigured:
            return SkillOutcome.not_found({"tracking_number": number})
    if ctx.customer_email and not owns(order, ctx.customer_email):
        return SkillOutcome.not_found({"tracking_number": number})  # not this customer's
    return await _track_order(ctx, order)


async def _track_shipment(ctx: SkillContext, args: dict[str, Any]) -> SkillOutcome:
    if "tracking_number" in args:
        return await _track_number(ctx, str(args["tracking_number"]))
    found = await find_order(ctx, args, verified=False)
    if isinstance(found, SkillOutcome):
        return found
    return await _track_order(ctx, found)


async def _track_order(ctx: SkillContext, found: Order) -> SkillOutcome:
    last = found.last_fulfillment
    if last is None or not last.tracking_number:
        return SkillOutcome.ok(
            {
                "order": found.name,
                "shipped": False,
                "fulfillment_status": found.fulfillment_status or "unfulfilled",
            }
        )
    if (last.tracking_company or "").upper().startswith("DHL"):
        try:
            live = await _track_dhl(ctx, last.tracking_number)
        except NotConfigured:
            pass  # no DHL account: the shop's fulfilment record is still true, if older
        else:
            if live.status is OutcomeStatus.OK:  # which order the parcel is, for the reply
                return SkillOutcome.ok({**live.data, "order": found.name})
            return live
    # Not a DHL parcel (or no DHL access): the shop's fulfilment status is what we know.
    return SkillOutcome.ok(
        {
            "order": found.name,
            "carrier": last.tracking_company,
            "tracking_number": last.tracking_number,
            "status": last.shipment_status,
            "source": "shopify",
        }
    )


def _reply(status: SkillStatus, t: dict[str, str], data: Data, lang: str) -> Rendered | None:
    if status is SkillStatus.NEEDS_INPUT:
        # A parcel problem gets the guidance first ("my parcel hasn't moved"); a plain
        # "where is my order?" elsewhere wants the question, not a passage.
        return Rendered(needs_input_text(t, data), with_kb=True)
    if status is not SkillStatus.OK:
        return None
    if data.get("shipped") is False:
        return Rendered(t["done.unshipped"].format(**data), [f"order:{data['order']}"])
    source = [f"tracking:{data['tracking_number']}"]
    if data.get("source") != "dhl":
        return Rendered(t["done.shop"].format(**data), source)
    summary = str(data.get("description") or data.get("status") or "")
    if data.get("location"):
        summary = t["done.where"].format(description=summary, location=data["location"])
    text = t["done.carrier"].format(**{**data, "summary": summary})
    if data.get("estimated_delivery"):
        eta = str(data["estimated_delivery"])[:10]  # the date; the hour is the carrier's guess
        text += t["done.eta"].format(estimated_delivery=eta)
    return Rendered(text, source)


track_shipment = Skill(
    manifest(
        "track_shipment",
        "Track a parcel by tracking number, or the parcel of an order (DHL live tracking).",
        {
            "tracking_number": {"type": "string", "minLength": 5, "maxLength": 40},
            "order": ORDER,
            "email": EMAIL,
        },
        needs=combine(SHOPIFY, DHL),
        anyOf=[{"required": ["tracking_number"]}, {"required": ["order"]}],
        routes=[
            Route(
                intent="track_shipment",
                entities={"order_number": "order", "tracking_number": "tracking_number"},
                remembered=REMEMBERED_ORDER,
                decisive=["tracking_number"],
                ask="order",
            )
        ],
        templates=TEMPLATES,
    ),
    _track_shipment,
    reply=_reply,
)
