"""Run one skill safely: allow-list, argument schema, confirmation of side effects,
idempotency, a timeout, retries of transient failures, and an audit row for each call.

The skill to run is chosen by the pipeline (from the NLU intent or a planner limited to
the tenant's allowed tools), never read from the customer's text; the runner refuses
anything outside the tenant's allow-list whatever the message asked for.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
import time
from collections.abc import Collection
from dataclasses import dataclass, replace
from typing import Any

from tenacity import (
    AsyncRetrying,
    retry_if_exception,
    stop_after_attempt,
    wait_exponential,
    wait_random,
)

from clawdesk.integrations.http import AuthError, NotFound, ProviderError, TransientError
from clawdesk.integrations.providers import NotConfigured
from clawdesk.skills.audit import AuditEntry, AuditLog
from clawdesk.skills.base import OutcomeStatus, Skill, SkillContext, SkillOutcome
from clawdesk.skills.manifest import argument_errors

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class RunPolicy:
    """Bounds on one skill call. `timeout_s` is per attempt."""

    timeout_s: float = 8.0
    attempts: int = 2
    backoff_s: float = 0.2


def idempotency_key(tenant_id: str, conversation_id: str, event_id: str, skill: str) -> str:
    """The key of one skill action caused by one event: the same on every redelivery."""
    raw = "\x1f".join((tenant_id, conversation_id, event_id, skill))
    return f"{skill}:{hashlib.sha256(raw.encode()).hexdigest()[:40]}"


def _retryable(exc: BaseException) -> bool:
    return isinstance(exc, TransientError | TimeoutError)


async def _attempt(
    skill: Skill, ctx: SkillContext, args: dict[str, Any], policy: RunPolicy
) -> SkillOutcome:
    retrying = AsyncRetrying(
        retry=retry_if_exception(_retryable),
        stop=stop_after_attempt(policy.attempts),
        wait=wait_exponential(multiplier=policy.backoff_s, max=2.0) + wait_random(0, 0.1),
        reraise=True,
    )
    async for attempt in retrying:
        with attempt:
            async with asyncio.timeout(policy.timeout_s):
                return await skill.run(ctx, dict(args))
    raise AssertionError("unreachable: tenacity either returns or reraises")


def outcome_of_error(exc: Exception, policy: RunPolicy) -> SkillOutcome:
    """The outcome for an exception that escaped a skill (after retries)."""
    if isinstance(exc, TimeoutError):
        return SkillOutcome.failed(
            f"timed out after {policy.timeout_s:g}s", {"error": "timeout"}, retryable=True
        )
    if isinstance(exc, NotConfigured):
        return SkillOutcome(status=OutcomeStatus.UNAVAILABLE, message=str(exc))
    if isinstance(exc, ProviderError):
        data = {"provider": exc.provider, "status": exc.status, "code": exc.code}
        if isinstance(exc, AuthError):
            return SkillOutcome(
                status=OutcomeStatus.UNAVAILABLE,
                data=data,
                message=f"{exc.provider} rejected our credentials",
            )
        if isinstance(exc, NotFound):
            return SkillOutcome.not_found(data, exc.message)
        return SkillOutcome.failed(exc.message, data, retryable=isinstance(exc, TransientError))
    return SkillOutcome.failed("internal error", {"error": type(exc).__name__})


async def _confirmation(
    skill: Skill, ctx: SkillContext, args: dict[str, Any], policy: RunPolicy
) -> SkillOutcome:
    """NEEDS_CONFIRMATION saying what would happen; or the skill's answer if its
    read-only checks already show it cannot happen (nothing to confirm then).

    A preview may return its own NEEDS_CONFIRMATION outcome with the facts of the
    action in `data` (order, amount...) for the reply to quote. A provider that is not
    configured (or rejects our credentials) makes the skill unavailable right away:
    asking the customer to confirm what cannot be done would waste their turn.
    """
    text = f"{skill.manifest.description} ({', '.join(f'{k}={v}' for k, v in args.items())})"
    if skill.preview is not None:
        try:
            async with asyncio.timeout(policy.timeout_s):
                preview = await skill.preview(ctx, dict(args))
        except (NotConfigured, AuthError) as exc:
            return outcome_of_error(exc, policy)
        except Exception:
            log.warning("skill preview failed", extra={"skill": skill.name}, exc_info=True)
        else:
            if isinstance(preview, SkillOutcome):
                if preview.status is OutcomeStatus.NEEDS_CONFIRMATION:
                    data = {**preview.data, "arguments": args}
                    return preview.model_copy(update={"data": data})
                return preview
            text = preview
    return SkillOutcome(
        status=OutcomeStatus.NEEDS_CONFIRMATION, message=text, data={"arguments": args}
    )


async def run_skill(
    skill: Skill,
    ctx: SkillContext,
    args: dict[str, Any],
    *,
    tenant_allow_list: Collection[str],
    confirmed: bool,
    idempotency_key: str | None,
    audit: AuditLog,
    policy: RunPolicy | None = None,
) -> SkillOutcome:
    """Run `skill` for `ctx` if the tenant allows it, and return what happened.

    Side-effecting skills run only when `confirmed` (else NEEDS_CONFIRMATION with a
    description of the action) and only with an `idempotency_key`; with a key, a
    replay returns the stored result without running the skill again.
    """
    policy = policy or RunPolicy()
    name = skill.manifest.name
    started = time.monotonic()

    async def finish(outcome: SkillOutcome, error: str | None = None) -> SkillOutcome:
        outcome = outcome.model_copy(update={"skill": name})
        elapsed = int((time.monotonic() - started) * 1000)
        entry = AuditEntry(
            ctx.tenant_id,
            ctx.conversation_id,
            name,
            args,
            idempotency_key,
            outcome.status.value,
            outcome.model_dump(mode="json"),
            error,
            outcome.replayed,
            elapsed,
        )
        await audit.record(entry)
        return outcome

    if name not in tenant_allow_list:
        log.warning("skill refused: not allowed", extra={"skill": name, "tenant": ctx.tenant_id})
        return await finish(
            SkillOutcome(
                status=OutcomeStatus.REFUSED, message="this action is not enabled for this shop"
            )
        )
    errors = argument_errors(skill.manifest, args)
    if errors:
        return await finish(SkillOutcome.needs_input("; ".join(errors), {"errors": errors}))
    if skill.manifest.side_effects and not confirmed:
        return await finish(await _confirmation(skill, ctx, args, policy))
    if skill.manifest.side_effects and not idempotency_key:
        raise ValueError(f"{name} has side effects: an idempotency key is required")
    if idempotency_key:
        claim = await audit.claim(idempotency_key)
        if claim.result is not None:
            stored = SkillOutcome.model_validate(claim.result)
            return await finish(stored.model_copy(update={"replayed": True}))
        if not claim.acquired:
            return await finish(
                SkillOutcome(
                    status=OutcomeStatus.IN_PROGRESS,
                    retryable=True,
                    message="this action is already being carried out",
                )
            )
    try:
        outcome = await _attempt(skill, replace(ctx, idempotency_key=idempotency_key), args, policy)
    except asyncio.CancelledError:
        # The worker is stopping: free the key so the redelivered event can run it
        # (the providers' own idempotency covers a call that did go through).
        if idempotency_key:
            await asyncio.shield(audit.release(idempotency_key))
        raise
    except Exception as exc:
        log.warning("skill failed", extra={"skill": name, "error": repr(exc)})
        outcome = outcome_of_error(exc, policy)
        if idempotency_key:
            await audit.release(idempotency_key)
        return await finish(outcome, repr(exc))
    if idempotency_key:
        if outcome.retryable:
            await audit.release(idempotency_key)
        else:
            await audit.store(
                idempotency_key, outcome.model_copy(update={"skill": name}).model_dump(mode="json")
            )
    return await finish(outcome)
