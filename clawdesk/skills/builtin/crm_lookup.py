"""crm_lookup: the customer's CRM contact (HubSpot): name, lifecycle stage."""

from __future__ import annotations

from typing import Any

from clawdesk.skills.base import Skill, SkillContext, SkillOutcome
from clawdesk.skills.builtin.orders import EMAIL, HUBSPOT, manifest


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


# No route and no reply: the LLM may call it as a tool; the offline dialogue does not.
crm_lookup = Skill(
    manifest(
        "crm_lookup",
        "Find the customer's CRM contact (name, lifecycle stage).",
        {"email": EMAIL},
        needs=HUBSPOT,
    ),
    _crm_lookup,
)
