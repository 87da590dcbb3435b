"""Skills as LLM tools: which the model is offered (the tenant's allow-list, from the
skill manifests), and how a tool call it makes is carried out — by the skills stage's
`SkillRuntime` (the same registry, provider clients, demo shop, caches and allow-lists),
whose `runner.run_skill` enforces the allow-list, the argument schema, confirmation of
side effects, idempotency and the audit log. Nothing here duplicates those checks.

The model never confirms a side effect: every call runs with `confirmed=False`, so a
refund or cancellation comes back as NEEDS_CONFIRMATION with a description of the
action, for the customer to confirm.
"""

from __future__ import annotations

import hashlib
import json
import logging
from dataclasses import dataclass
from typing import Any

from clawdesk.ops import metrics
from clawdesk.skills import OutcomeStatus, SkillContext, SkillOutcome
from clawdesk.skills.worker_skills import SkillRuntime

log = logging.getLogger(__name__)

# Handing a conversation to a human changes who owns it (memory flag, conversation
# status, the handoff event), which the skills stage does; the model is not offered it.
PIPELINE_ONLY = frozenset({"handoff"})


@dataclass(frozen=True)
class Offer:
    """The tools the model may call for one reply."""

    tools: list[dict[str, Any]]

    @property
    def names(self) -> frozenset[str]:
        return frozenset(t["function"]["name"] for t in self.tools)


NO_TOOLS = Offer([])


@dataclass(frozen=True)
class ToolCall:
    """One call the model made, as it made it."""

    call_id: str
    name: str
    arguments: str  # the JSON text the model wrote


def call_event_id(event_id: str, call: ToolCall) -> str:
    """What a tool call's idempotency key derives from: the same for the same call on a
    redelivered event, another for other arguments (the model may open two tickets)."""
    return f"{event_id}:{hashlib.sha256(call.arguments.encode()).hexdigest()[:16]}"


def tool_message(call: ToolCall, outcome: SkillOutcome) -> dict[str, Any]:
    """The `tool` message that feeds an outcome back to the model."""
    body: dict[str, Any] = {"status": outcome.status.value}
    if outcome.data:
        body["data"] = outcome.data
    if outcome.message:
        body["message"] = outcome.message
    return {
        "role": "tool",
        "tool_call_id": call.call_id,
        "content": json.dumps(body, ensure_ascii=False, default=str),
    }


@dataclass
class ToolBox:
    """The skills stage's runtime, seen as tools."""

    runtime: SkillRuntime

    async def offer(self, tenant_id: str) -> Offer:
        """The tools this tenant allows (and that the pipeline lets the model call)."""
        allowed = await self.runtime.allow_lists(tenant_id)
        return Offer(self.runtime.registry.tools(allowed - PIPELINE_ONLY))

    async def call(self, call: ToolCall, ctx: SkillContext, event_id: str) -> SkillOutcome:
        """Carry out one tool call the model made (never raises for the model's mistakes).

        A tool the model was not offered goes to the runner all the same: the tenant's
        allow-list refuses it there, and the refusal is audited.
        """
        outcome = await self._call(call, ctx, event_id)
        metrics.LLM_TOOL_CALLS.labels(call.name[:64], outcome.status.value).inc()
        return outcome

    async def _call(self, call: ToolCall, ctx: SkillContext, event_id: str) -> SkillOutcome:
        if call.name in PIPELINE_ONLY:
            log.warning("llm asked for a pipeline-only skill", extra={"skill": call.name})
            return SkillOutcome(status=OutcomeStatus.REFUSED, message="not an action for you")
        try:
            args = json.loads(call.arguments or "{}")
        except json.JSONDecodeError:
            return SkillOutcome.needs_input("the arguments are not valid JSON")
        if not isinstance(args, dict):
            return SkillOutcome.needs_input("the arguments must be a JSON object")
        return await self.runtime.run(
            call.name, ctx, args, confirmed=False, key_event_id=call_event_id(event_id, call)
        )
