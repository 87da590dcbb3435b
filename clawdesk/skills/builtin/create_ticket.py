"""create_ticket: a support ticket (Zendesk) for this conversation, one per
conversation. Keyed by the event, so a redelivered message opens no second one."""

from __future__ import annotations

from typing import Any

from clawdesk.integrations.zendesk import Requester
from clawdesk.skills.base import Skill, SkillContext, SkillOutcome
from clawdesk.skills.builtin.orders import ZENDESK, manifest
from clawdesk.skills.manifest import Route
from clawdesk.skills.replies import Data, Rendered
from schemas import SkillStatus

TEMPLATES = {
    "en": {
        "action": "open a support ticket",
        "done": "I've opened ticket #{ticket_id} for this; our team will follow up with you.",
    },
    "zh": {
        "action": "创建工单",
        "done": "已为您创建工单 #{ticket_id},我们的团队会跟进处理。",
    },
}


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


def _reply(status: SkillStatus, t: dict[str, str], data: Data, lang: str) -> Rendered | None:
    if status is not SkillStatus.OK:
        return None
    # The return policy goes with the ticket, when the knowledge base has it.
    return Rendered(t["done"].format(**data), [f"ticket:{data['ticket_id']}"], with_kb=True)


create_ticket = Skill(
    manifest(
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
        keyed=True,
        routes=[
            # "I want to return order 1003": a ticket quoting the message; without an
            # order named, the knowledge base's return policy answers instead.
            Route(
                intent="return_request",
                entities={"order_number": "order"},
                named_only=True,
                arguments={
                    "subject": "Return request for order #{order}",
                    "comment": "{text}",
                },
            )
        ],
        templates=TEMPLATES,
    ),
    _create_ticket,
    reply=_reply,
)
