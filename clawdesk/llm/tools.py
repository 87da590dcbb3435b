"""Skills as LLM tools: which the model is offered (the tenant's allow-list, from the
skill manifests), and how a tool call it makes is carried out (through the skills
runner, which enforces the allow-list, the argument schema, confirmation of side
effects, idempotency and the audit log; nothing here duplicates it).

The model never confirms a side effect: every call runs with `confirmed=False`, so a
refund or cancellation comes back as NEEDS_CONFIRMATION with a description of the
action, for the customer to confirm.
"""

from __future__ import annotations

import hashlib
import json
import logging
from collections.abc import Collection
from dataclasses import dataclass
from typing import Any

from psycopg_pool import AsyncConnectionPool

from clawdesk import metrics
from clawdesk.integrations import Integrations
from clawdesk.skills import (
    AuditLog,
    OutcomeStatus,
    PostgresAudit,
    RunPolicy,
    SkillContext,
    SkillOutcome,
    SkillRegistry,
    idempotency_key,
    run_skill,
)
from clawdesk.skills.audit import allowed_skills

log = logging.getLogger(__name__)

# Handing a conversation to a human changes who owns it (memory flag, conversation
# status, the handoff event), which the skills stage does; the model is not offered it.
PIPELINE_ONLY = frozenset({"handoff"})


@dataclass(frozen=True)
class Offer:
    """What the model may call for one reply: the tenant's allowed skills and their tools."""

    allowed: frozenset[str]
    tools: list[dict[str, Any]]

    @property
    def names(self) -> frozenset[str]:
        return frozenset(t["function"]["name"] for t in self.tools)


@dataclass(frozen=True)
class ToolCall:
    """One call the model made, as it made it."""

    call_id: str
    name: str
    arguments: str  # the JSON text the model wrote


def call_key(tenant: str, conversation: str, event_id: str, call: ToolCall) -> str:
    """The idempotency key of one tool call: the same for the same call on a redelivered
    event, another for other arguments (the model may look up two orders)."""
    digest = hashlib.sha256(call.arguments.encode()).hexdigest()[:16]
    return idempotency_key(tenant, conversation, f"{event_id}:{digest}", call.name)


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


def _refused(message: str) -> SkillOutcome:
    return SkillOutcome(status=OutcomeStatus.REFUSED, message=message)


@dataclass
class ToolBox:
    """The registered skills, the tenant allow-lists in Postgres, and what skills need."""

    registry: SkillRegistry
    pool: AsyncConnectionPool
    integrations: Integrations | None
    policy: RunPolicy
    audit: AuditLog | None = None

    def __post_init__(self) -> None:
        if self.audit is None:
            self.audit = PostgresAudit(self.pool)

    async def offer(self, tenant_id: str) -> Offer:
        """The tools this tenant allows (and that the pipeline lets the model call)."""
        allowed = await allowed_skills(self.pool, tenant_id)
        return Offer(allowed, self.registry.tools(allowed - PIPELINE_ONLY))

    async def call(
        self, call: ToolCall, ctx: SkillContext, offer: Offer, event_id: str
    ) -> SkillOutcome:
        """Carry out one tool call the model made (never raises for the model's mistakes)."""
        outcome = await self._call(call, ctx, offer, event_id)
        metrics.LLM_TOOL_CALLS.labels(call.name[:64], outcome.status.value).inc()
        return outcome

    async def _call(
        self, call: ToolCall, ctx: SkillContext, offer: Offer, event_id: str
    ) -> SkillOutcome:
        if call.name not in self.registry:
            log.warning("llm asked for an unknown tool", extra={"tool": call.name[:64]})
            return _refused("no such action")
        try:
            args = json.loads(call.arguments or "{}")
        except json.JSONDecodeError:
            return SkillOutcome.needs_input("the arguments are not valid JSON")
        if not isinstance(args, dict):
            return SkillOutcome.needs_input("the arguments must be a JSON object")
        # A tool the model was not offered (not allowed, or pipeline-only) goes to the
        # runner with an allow-list without it: refused there, and audited.
        allow: Collection[str] = offer.allowed if call.name in offer.names else frozenset()
        assert self.audit is not None
        return await run_skill(
            self.registry.get(call.name),
            ctx,
            args,
            tenant_allow_list=allow,
            confirmed=False,
            idempotency_key=call_key(ctx.tenant_id, ctx.conversation_id, event_id, call),
            audit=self.audit,
            policy=self.policy,
        )
