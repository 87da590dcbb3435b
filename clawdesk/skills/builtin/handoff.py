"""handoff: hand the conversation to a human agent. Only the decision: the skills stage
turns `data["handoff"]` into the Handoff event, and the handoff agent alone opens (and
retries) the ticket, with the transcript."""

from __future__ import annotations

from typing import Any

from clawdesk.skills.base import Skill, SkillContext, SkillOutcome
from clawdesk.skills.builtin.orders import manifest
from clawdesk.skills.manifest import Route


async def _handoff(ctx: SkillContext, args: dict[str, Any]) -> SkillOutcome:
    # A ticket opened here too would be a second code path with no retry and no metrics.
    reason = str(args.get("reason", "customer_request"))
    summary = str(args.get("summary") or f"The customer asked for a human ({reason}).")
    return SkillOutcome.ok({"handoff": reason, "reason": reason, "summary": summary})


handoff = Skill(
    manifest(
        "handoff",
        "Hand the conversation to a human agent (the handoff stage opens its ticket).",
        {
            "reason": {"type": "string", "minLength": 1, "maxLength": 200},
            "summary": {"type": "string", "maxLength": 5000},
        },
        # The intent's messages are handed off by the dialogue, without running the skill.
        routes=[Route(intent="human_agent")],
    ),
    _handoff,
)
