"""What the order skills share: the provider needs, the argument schemas, the manifest
builder, and finding an order the customer may see (or change).

An order is shown or acted on only for its owner: when the context or the arguments
name an e-mail that is not the order's, the order is "not found" (its existence is not
revealed), and the side-effecting skills (refund, cancel) need that e-mail to match.
"""

from __future__ import annotations

from typing import Any

from clawdesk.integrations.shopify import Order
from clawdesk.nlu.entities import order_number
from clawdesk.skills.base import OutcomeStatus, SkillContext, SkillOutcome
from clawdesk.skills.manifest import Route, SkillManifest, Templates

Needs = tuple[list[str], list[str]]  # (settings, secrets)

SHOPIFY: Needs = (["shopify_url", "shopify_api_version"], ["shopify_token"])
DHL: Needs = (["dhl_url"], ["dhl_api_key"])
STRIPE: Needs = (["stripe_url"], ["stripe_secret_key"])
HUBSPOT: Needs = (["hubspot_url"], ["hubspot_token"])
ZENDESK: Needs = (["zendesk_url", "zendesk_email"], ["zendesk_api_token"])

ORDER = {"type": "string", "minLength": 1, "maxLength": 40, "description": "order number"}
EMAIL = {
    "type": "string",
    "format": "email",
    "maxLength": 254,
    "description": "the e-mail the order was placed with",
}
# The order a message names (or the one talked about before) fills `order`.
ORDER_ENTITIES = {"order_number": "order"}
REMEMBERED_ORDER = ["order_number"]


def manifest(
    name: str,
    description: str,
    properties: dict[str, Any],
    required: list[str] | None = None,
    *,
    needs: Needs = ([], []),
    side_effects: bool = False,
    keyed: bool = False,
    routes: list[Route] | None = None,
    confirmation: dict[str, str] | None = None,
    templates: Templates | None = None,
    **schema: Any,
) -> SkillManifest:
    """A built-in skill's manifest, its arguments an object schema of `properties`."""
    parameters = {
        "type": "object",
        "properties": properties,
        "additionalProperties": False,
        **schema,
    }
    if required:
        parameters["required"] = required
    return SkillManifest(
        name=name,
        description=description,
        parameters=parameters,
        side_effects=side_effects,
        keyed=keyed,
        settings=needs[0],
        secrets=needs[1],
        routes=routes or [],
        confirmation=confirmation or {},
        templates=templates or {},
    )


def combine(*needs: Needs) -> Needs:
    """The settings and secrets of several providers."""
    return [s for n in needs for s in n[0]], [s for n in needs for s in n[1]]


def chinese(ctx: SkillContext) -> bool:
    """Whether the customer speaks Chinese."""
    return ctx.language.lower().startswith("zh")


def summarise_order(order: Order) -> dict[str, Any]:
    """The fields of an order a reply may quote (no address, no e-mail)."""
    last = order.last_fulfillment
    return {
        "order": order.name,
        "created_at": order.created_at.isoformat(),
        "financial_status": order.financial_status,
        "fulfillment_status": order.fulfillment_status or "unfulfilled",
        "cancelled": order.cancelled,
        "total": f"{order.total_price} {order.currency}",
        "carrier": last.tracking_company if last else None,
        "tracking_number": last.tracking_number if last else None,
        "shipment_status": last.shipment_status if last else None,
        "items": [item.title for item in order.line_items],
    }


def owns(order: Order, email: str | None) -> bool:
    """Whether the order was placed with this e-mail."""
    return bool(email) and (order.email or "").lower() == str(email).strip().lower()


async def find_order(
    ctx: SkillContext, args: dict[str, Any], *, verified: bool
) -> Order | SkillOutcome:
    """The order the arguments name, if this customer may see (or change) it."""
    reference = str(args["order"])
    digits = order_number(reference)
    if digits is None:
        return SkillOutcome.needs_input(
            "order number not recognised", {"order": reference, "missing": "order"}
        )
    # A channel-verified identity wins over an e-mail typed in the chat.
    email = ctx.customer_email or args.get("email")
    if verified and not email:
        return SkillOutcome.needs_input(
            "e-mail needed to verify the order", {"order": f"#{digits}", "missing": "email"}
        )
    order = await ctx.order_source.get_order_by_name(digits)
    if order is None or (email and not owns(order, email)):
        return SkillOutcome.not_found({"order": f"#{digits}"})
    return order


def to_confirm(message: str, **facts: Any) -> SkillOutcome:
    """A preview's NEEDS_CONFIRMATION with the facts the question quotes."""
    return SkillOutcome(status=OutcomeStatus.NEEDS_CONFIRMATION, message=message, data=facts)
