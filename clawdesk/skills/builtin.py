"""The built-in skills: thin wrappers over the provider clients, with their manifests.

Who the customer is comes from the `SkillContext` the pipeline builds. An order is
shown or acted on only for its owner: when the context or the arguments name an e-mail
that is not the order's, the order is "not found" (its existence is not revealed), and
the side-effecting skills (refund, cancel) need that e-mail to match. `order_list`
uses the channel-verified e-mail only, never one typed in the chat.

Orders are read from `ctx.order_source` (Shopify, or the packaged demo shop, behind the
cache) and parcels from `ctx.tracker` (DHL). A NEEDS_INPUT outcome names what is
missing in `data["missing"]` ("order", "email", "sign_in") so the pipeline can ask for
it and resume. The side-effecting skills' previews return NEEDS_CONFIRMATION with the
facts to confirm (`action`, `order`, `amount`, `currency`) for the reply to quote.
"""

from __future__ import annotations

from decimal import ROUND_HALF_UP, Decimal
from typing import Any

from clawdesk.integrations.http import NotFound, ProviderError
from clawdesk.integrations.providers import NotConfigured
from clawdesk.integrations.shopify import Order
from clawdesk.integrations.zendesk import Requester
from clawdesk.nlu.entities import order_number
from clawdesk.skills.base import OutcomeStatus, Skill, SkillContext, SkillOutcome
from clawdesk.skills.manifest import SkillManifest

SHOPIFY = (["shopify_url", "shopify_api_version"], ["shopify_token"])
DHL = (["dhl_url"], ["dhl_api_key"])
STRIPE = (["stripe_url"], ["stripe_secret_key"])
HUBSPOT = (["hubspot_url"], ["hubspot_token"])
ZENDESK = (["zendesk_url", "zendesk_email"], ["zendesk_api_token"])

ORDER = {"type": "string", "minLength": 1, "maxLength": 40, "description": "order number"}
EMAIL = {
    "type": "string",
    "format": "email",
    "maxLength": 254,
    "description": "the e-mail the order was placed with",
}
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


def _manifest(
    name: str,
    description: str,
    properties: dict[str, Any],
    required: list[str] | None = None,
    *,
    needs: tuple[list[str], list[str]] = ([], []),
    side_effects: bool = False,
    **schema: Any,
) -> SkillManifest:
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
        settings=needs[0],
        secrets=needs[1],
    )


def _combine(*needs: tuple[list[str], list[str]]) -> tuple[list[str], list[str]]:
    return [s for n in needs for s in n[0]], [s for n in needs for s in n[1]]


def _chinese(ctx: SkillContext) -> bool:
    return ctx.language.lower().startswith("zh")


# -- orders -------------------------------------------------------------------------


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


def _owns(order: Order, email: str | None) -> bool:
    return bool(email) and (order.email or "").lower() == str(email).strip().lower()


async def _find_order(
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
    if order is None or (email and not _owns(order, email)):
        return SkillOutcome.not_found({"order": f"#{digits}"})
    return order


async def _order_status(ctx: SkillContext, args: dict[str, Any]) -> SkillOutcome:
    found = await _find_order(ctx, args, verified=False)
    if isinstance(found, SkillOutcome):
        return found
    return SkillOutcome.ok(summarise_order(found))


order_status = Skill(
    _manifest(
        "order_status",
        "Look up the status of one order by its number.",
        {"order": ORDER, "email": EMAIL},
        ["order"],
        needs=SHOPIFY,
    ),
    _order_status,
)


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


order_list = Skill(
    _manifest(
        "order_list",
        "List the signed-in customer's recent orders.",
        {"limit": {"type": "integer", "minimum": 1, "maximum": 20}},
        needs=SHOPIFY,
    ),
    _order_list,
)


# -- shipments ----------------------------------------------------------------------


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
    if ctx.customer_email and not _owns(order, ctx.customer_email):
        return SkillOutcome.not_found({"tracking_number": number})  # not this customer's
    return await _track_order(ctx, order)


async def _track_shipment(ctx: SkillContext, args: dict[str, Any]) -> SkillOutcome:
    if "tracking_number" in args:
        return await _track_number(ctx, str(args["tracking_number"]))
    found = await _find_order(ctx, args, verified=False)
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


track_shipment = Skill(
    _manifest(
        "track_shipment",
        "Track a parcel by tracking number, or the parcel of an order (DHL live tracking).",
        {
            "tracking_number": {"type": "string", "minLength": 5, "maxLength": 40},
            "order": ORDER,
            "email": EMAIL,
        },
        needs=_combine(SHOPIFY, DHL),
        anyOf=[{"required": ["tracking_number"]}, {"required": ["order"]}],
    ),
    _track_shipment,
)


# -- refunds and cancellations (side effects) ---------------------------------------


def _minor(amount: Decimal, currency: str) -> int:
    exponent = 0 if currency.upper() in ZERO_DECIMAL else 2
    return int((amount * 10**exponent).to_integral_value(ROUND_HALF_UP))


def _refund_amount(order: Order, args: dict[str, Any]) -> Decimal:
    remaining = order.total_price - order.total_refunded
    return Decimal(args["amount"]) if "amount" in args else remaining


async def _refundable(ctx: SkillContext, args: dict[str, Any]) -> Order | SkillOutcome:
    found = await _find_order(ctx, args, verified=True)
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


def _to_confirm(message: str, **facts: Any) -> SkillOutcome:
    return SkillOutcome(status=OutcomeStatus.NEEDS_CONFIRMATION, message=message, data=facts)


async def _preview_refund(ctx: SkillContext, args: dict[str, Any]) -> str | SkillOutcome:
    ctx.providers.stripe  # noqa: B018 -- raises NotConfigured before we ask the customer
    found = await _refundable(ctx, args)
    if isinstance(found, SkillOutcome):
        return found
    value = _refund_amount(found, args)
    amount = f"{value} {found.currency}"
    if _chinese(ctx):
        text = f"将为订单 {found.name} 退款 {amount},原路退回。确认吗?"
    else:
        text = f"Refund {amount} for order {found.name} to the original payment method?"
    return _to_confirm(
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


refund = Skill(
    _manifest(
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
        needs=_combine(SHOPIFY, STRIPE),
        side_effects=True,
    ),
    _refund,
    _preview_refund,
)


async def _cancellable(ctx: SkillContext, args: dict[str, Any]) -> Order | SkillOutcome:
    found = await _find_order(ctx, args, verified=True)
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
    if _chinese(ctx):
        text = f"将取消订单 {found.name}({', '.join(items)},{total})。确认吗?"
    else:
        text = f"Cancel order {found.name} ({', '.join(items)}, {total})?"
    return _to_confirm(
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


cancel_order = Skill(
    _manifest(
        "cancel_order",
        "Cancel an order that has not shipped yet.",
        {"order": ORDER, "email": EMAIL, "reason": {"enum": ["customer", "other"]}},
        ["order"],
        needs=SHOPIFY,
        side_effects=True,
    ),
    _cancel_order,
    _preview_cancel,
)


# -- CRM and tickets ----------------------------------------------------------------


async def _crm_lookup(ctx: SkillContext, args: dict[str, Any]) -> SkillOutcome:
    email = ctx.customer_email or args.get("email")
    if not email:
        return SkillOutcome.needs_input("e-mail needed")
    contact = await ctx.providers.hubspot.find_contact(email)
    if contact is None:
        return SkillOutcome.not_found({"email": email})
    keep = ("firstname", "lastname", "lifecyclestage", "company")
    return SkillOutcome.ok(
        {"contact_id": contact.id, **{k: contact.properties.get(k) for k in keep}}
    )


crm_lookup = Skill(
    _manifest(
        "crm_lookup",
        "Find the customer's CRM contact (name, lifecycle stage).",
        {"email": EMAIL},
        needs=HUBSPOT,
    ),
    _crm_lookup,
)


def _requester(ctx: SkillContext) -> Requester:
    return Requester(name=ctx.customer_name or ctx.customer_id, email=ctx.customer_email)


def _tags(ctx: SkillContext, *extra: str) -> list[str]:
    return sorted({"clawdesk", f"tenant_{ctx.tenant_id}".lower(), *extra})


async def _create_ticket(ctx: SkillContext, args: dict[str, Any]) -> SkillOutcome:
    ticket = await ctx.providers.zendesk.create_ticket(
        str(args["subject"]),
        str(args["comment"]),
        _requester(ctx),
        _tags(ctx, *args.get("tags", [])),
        ctx.conversation_id,
        idempotency_key=ctx.idempotency_key,
    )
    return SkillOutcome.ok({"ticket_id": ticket.id, "status": ticket.status, "url": ticket.url})


create_ticket = Skill(
    _manifest(
        "create_ticket",
        "Open a support ticket for this conversation (one per conversation).",
        {
            "subject": {"type": "string", "minLength": 1, "maxLength": 150},
            "comment": {"type": "string", "minLength": 1, "maxLength": 10_000},
            "tags": {
                "type": "array",
                "maxItems": 10,
                "items": {"type": "string", "pattern": "^[a-z0-9_-]{1,40}$"},
            },
        },
        ["subject", "comment"],
        needs=ZENDESK,
    ),
    _create_ticket,
)


async def _handoff(ctx: SkillContext, args: dict[str, Any]) -> SkillOutcome:
    # Only the decision: the skills stage turns `data["handoff"]` into the Handoff event,
    # and the handoff agent alone opens (and retries) the ticket, with the transcript.
    # A ticket opened here too would be a second code path with no retry and no metrics.
    reason = str(args.get("reason", "customer_request"))
    summary = str(args.get("summary") or f"The customer asked for a human ({reason}).")
    return SkillOutcome.ok({"handoff": reason, "reason": reason, "summary": summary})


handoff = Skill(
    _manifest(
        "handoff",
        "Hand the conversation to a human agent (the handoff stage opens its ticket).",
        {
            "reason": {"type": "string", "minLength": 1, "maxLength": 200},
            "summary": {"type": "string", "maxLength": 5000},
        },
    ),
    _handoff,
)


BUILTIN_SKILLS: tuple[Skill, ...] = (
    order_status,
    order_list,
    track_shipment,
    refund,
    cancel_order,
    crm_lookup,
    create_ticket,
    handoff,
)

#: A suggested mapping from the demo NLU intents to skills (the pipeline decides).
INTENT_SKILLS: dict[str, str] = {
    "order_status": "order_status",
    "track_shipment": "track_shipment",
    "cancel_order": "cancel_order",
    "refund_request": "refund",
    "human_agent": "handoff",
}
