"""skills: run the action an intent asks for (order status, tracking, handoff)."""

from __future__ import annotations

import re
from collections.abc import AsyncIterable
from typing import Any

from agents import guard
from agents.memory import conversation_memory, remember_slots, with_handoff
from clawdesk import db, metrics
from clawdesk.app import app
from clawdesk.services import current, ready
from schemas import Handoff, RetrievalContext, SkillResult, SkillStatus
from topics.streams import context_topic, handoff_topic, skill_result_topic

STAGE = "skills"
ORDER_INTENTS = frozenset({"order_status", "track_shipment", "cancel_order"})
# "where is it now?" after an order was named: a short question pointing back at it.
FOLLOW_UP = re.compile(
    r"\b(it|its|it's|that|this|them|the order|the package|the parcel)\b|它|那个|这个|到哪",
    re.IGNORECASE,
)


def is_order_follow_up(context: RetrievalContext) -> bool:
    """An unclear message that refers back to the order remembered in this conversation."""
    nlu = context.nlu
    remembered = "order_number" in nlu.accepted.memory.slots
    unclear = nlu.intent == "oos" or not context.answerable
    return remembered and unclear and bool(FOLLOW_UP.search(nlu.accepted.message.text))


def order_reference(context: RetrievalContext) -> str | None:
    """The order this message is about: named in it, or remembered from earlier."""
    for entity in context.nlu.entities:
        if entity.kind == "order_number":
            return entity.value
    return context.nlu.accepted.memory.slots.get("order_number")


def summarise_order(order: dict[str, Any]) -> dict[str, Any]:
    """The fields of a Shopify order a reply may quote."""
    fulfillments = order.get("fulfillments") or []
    last = fulfillments[-1] if fulfillments else {}
    return {
        "order": order["name"],
        "financial_status": order.get("financial_status"),
        "fulfillment_status": order.get("fulfillment_status") or "unfulfilled",
        "cancelled": bool(order.get("cancelled_at")),
        "total": f"{order.get('total_price')} {order.get('currency')}",
        "carrier": last.get("tracking_company"),
        "tracking_number": last.get("tracking_number"),
        "shipment_status": last.get("shipment_status"),
        "items": [i["title"] for i in order.get("line_items", [])],
    }


def look_up_order(context: RetrievalContext) -> SkillResult:
    """The order-status skill against the shop."""
    reference = order_reference(context)
    skill = "order_status"
    if reference is None:
        return SkillResult(
            **context.lineage(),
            context=context,
            skill=skill,
            status=SkillStatus.NEEDS_INPUT,
            message="order number missing",
        )
    order = current().shop.find(reference)
    if order is None:
        return SkillResult(
            **context.lineage(),
            context=context,
            skill=skill,
            status=SkillStatus.NOT_FOUND,
            data={"reference": reference},
        )
    return SkillResult(
        **context.lineage(),
        context=context,
        skill=skill,
        status=SkillStatus.OK,
        data=summarise_order(order),
    )


async def hand_off(context: RetrievalContext, reason: str) -> SkillResult:
    """Give the conversation to a human: flag memory, mark it in Postgres, emit a handoff."""
    msg = context.nlu.accepted.message
    conv = context.conversation_id
    conversation_memory[conv] = with_handoff(conversation_memory.get(conv), True)
    await db.set_conversation_status(current().pool, conv, "human")
    handoff = Handoff(
        **context.lineage(), reason=reason, customer_id=msg.customer_id, last_message=msg.text
    )
    await handoff_topic.send(key=conv.encode(), value=handoff.to_bytes())
    metrics.HANDOFFS.labels(reason).inc()
    return SkillResult(
        **context.lineage(),
        context=context,
        skill="handoff",
        status=SkillStatus.OK,
        data={"reason": reason},
    )


async def run(raw: bytes) -> None:
    """Run the skill for one retrieval context and pass its result on."""
    context = RetrievalContext.from_bytes(raw)
    conv = context.conversation_id
    # Slots are remembered here, not in the batched nlu stage: Faust allows table
    # writes only while iterating a stream event by event.
    conversation_memory[conv] = remember_slots(
        conversation_memory.get(conv), context.nlu.entities, context.nlu.language
    )
    intent = context.nlu.intent
    if intent == "human_agent":
        result = await hand_off(context, "customer_request")
    elif intent in ORDER_INTENTS or is_order_follow_up(context):
        result = look_up_order(context)
    else:
        result = SkillResult(
            **context.lineage(), context=context, skill=None, status=SkillStatus.SKIPPED
        )
    await skill_result_topic.send(key=context.conversation_id.encode(), value=result.to_bytes())


@app.agent(context_topic)
async def run_skill(contexts: AsyncIterable[bytes]) -> None:
    """Run skills for each retrieval context."""
    await ready()
    async for raw in contexts:
        await guard.process(STAGE, raw, run)
