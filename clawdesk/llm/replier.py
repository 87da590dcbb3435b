"""LLM mode of the reply stage: a grounded answer from the model, or a reason to fall
back to the offline composition.

One reply is: circuit open? → cap reached? → completion (with the tenant's tools) →
tool calls run through the skills runner and fed back → final answer, all before one
deadline and inside the token headroom read at the start: each call's `max_tokens` is
what the headroom leaves after a (high) estimate of the call's prompt, and a call with
less than `MIN_ANSWER_TOKENS` left is not made. Any failure on the way (timeout,
endpoint errors after retries, an open circuit, a reached token cap, an answer cut off
at `max_tokens` or otherwise unusable) returns a `Fallback`, and the caller composes
the offline reply it would have sent without an LLM.
"""

from __future__ import annotations

import asyncio
import json
import logging
import math
import uuid
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any

import openai
from openai.types.chat import ChatCompletion, ChatCompletionMessage

from clawdesk.llm.breaker import CircuitBreakerError
from clawdesk.llm.budget import Headroom, TokenBudget, Usage
from clawdesk.llm.client import BadResponse, LlmClient
from clawdesk.llm.prompt import build_messages, cited, strip_unknown_citations
from clawdesk.llm.tools import NO_TOOLS, Offer, ToolBox, ToolCall, tool_message
from clawdesk.ops import metrics
from clawdesk.skills import OutcomeStatus, SkillContext, SkillOutcome
from schemas import KbHit, SkillResult, SkillStatus

log = logging.getLogger(__name__)

# Fewer tokens than this cannot hold a useful answer: the offline reply is better than a
# cut one, and the call would be paid for nothing.
MIN_ANSWER_TOKENS = 48


class Fallback(StrEnum):
    """Why a reply was composed offline although LLM mode is on."""

    BREAKER_OPEN = "breaker_open"
    TOKEN_CAP = "token_cap"
    TIMEOUT = "timeout"
    ERROR = "error"
    BAD_RESPONSE = "bad_response"
    BUDGET_UNAVAILABLE = "budget_unavailable"


@dataclass(frozen=True)
class LlmAnswer:
    """The model's reply and what it rests on."""

    text: str
    cited: list[tuple[int, KbHit]] = field(default_factory=list)  # (number in prompt, hit)
    sources: list[str] = field(default_factory=list)
    pending: SkillOutcome | None = None  # a side effect awaiting the customer's yes
    tool_outcomes: list[SkillOutcome] = field(default_factory=list)
    tokens: int = 0


def estimate_tokens(text: str) -> int:
    """A deliberately high guess at how many tokens `text` is.

    Used before a call (to fit it under a cap) and when an endpoint leaves `usage` out.
    Tokenizers average about 4 characters a token on English and under 1 a character on
    Chinese; this counts 3 and 1, so that a cap is passed later, not sooner, when the
    guess is off.
    """
    wide = sum(1 for ch in text if ord(ch) >= 0x2E80)  # CJK and other wide scripts
    return max(1, wide + math.ceil((len(text) - wide) / 3))


def estimate_prompt_tokens(messages: list[dict[str, Any]], tools: list[dict[str, Any]]) -> int:
    """`estimate_tokens` of a request's messages and tool definitions as sent."""
    sent = json.dumps(messages, ensure_ascii=False)
    if tools:
        sent += json.dumps(tools, ensure_ascii=False)
    return estimate_tokens(sent)


class _OverBudget(Exception):
    """The headroom left cannot hold another call's prompt and a useful answer."""


def usage_of(completion: ChatCompletion, messages: list[dict[str, Any]], model: str) -> Usage:
    """The call's usage as reported (estimated from the text when the endpoint omits it)."""
    completion_id = completion.id or f"local-{uuid.uuid4().hex}"
    if completion.usage is not None:
        u = completion.usage
        return Usage(
            completion_id,
            completion.model or model,
            u.prompt_tokens,
            u.completion_tokens,
            u.total_tokens,
        )
    prompt = estimate_tokens("".join(str(m.get("content") or "") for m in messages))
    answer = estimate_tokens(completion.choices[0].message.content or "")
    return Usage(completion_id, completion.model or model, prompt, answer, prompt + answer)


def _assistant_turn(message: ChatCompletionMessage) -> dict[str, Any]:
    """The model's tool-calling message, as it must be echoed back before the results."""
    return message.model_dump(exclude_none=True, include={"role", "content", "tool_calls"})


def _sources(result: SkillResult, hits: list[KbHit], outcomes: list[SkillOutcome]) -> list[str]:
    out = [hit.doc_id for hit in hits]
    if result.skill == "order_status" and result.status is SkillStatus.OK:
        out.append(f"order:{result.data.get('order')}")
    for outcome in outcomes:
        if outcome.status is OutcomeStatus.OK and outcome.data.get("order"):
            out.append(f"order:{outcome.data['order']}")
    return list(dict.fromkeys(out))


@dataclass
class _Conversation:
    """The state of one reply's exchange with the model."""

    messages: list[dict[str, Any]]
    tools: ToolBox | None
    offer: Offer
    ctx: SkillContext
    event_id: str
    reply_id: str
    deadline: float
    headroom: int | None = None  # tokens this reply may spend; None: no cap
    outcomes: list[SkillOutcome] = field(default_factory=list)
    tokens: int = 0

    def answer_limit(self) -> int | None:
        """`max_tokens` for the next call; raises `_OverBudget` when no call fits."""
        if self.headroom is None:
            return None
        prompt = estimate_prompt_tokens(self.messages, self.offer.tools)
        room = self.headroom - self.tokens - prompt
        if room < MIN_ANSWER_TOKENS:
            raise _OverBudget(f"{room} tokens left for the answer")
        return room


class LlmReplier:
    """Composes replies with the LLM; returns a `Fallback` whenever it cannot."""

    def __init__(
        self,
        client: LlmClient,
        *,
        budget: TokenBudget | None,
        deadline_s: float,
        max_tool_rounds: int,
    ) -> None:
        self.client = client
        self.budget = budget
        self.deadline_s = deadline_s
        self.max_tool_rounds = max_tool_rounds

    async def answer(
        self,
        result: SkillResult,
        reply_id: str,
        *,
        tools: ToolBox | None = None,
        ctx: SkillContext | None = None,
    ) -> LlmAnswer | Fallback:
        """The model's grounded reply to one skill result, or why there is none.

        With `tools`, the tenant's allowed skills are offered, run for `ctx` (who the
        customer is, as the skills stage sees them; by default the message's sender).
        """
        deadline = asyncio.get_running_loop().time() + self.deadline_s
        if self.client.open:
            return self._fallback(Fallback.BREAKER_OPEN, result)
        headroom = await self._headroom(result)
        if isinstance(headroom, Fallback):
            return self._fallback(headroom, result)
        try:
            return await self._answer(result, reply_id, deadline, tools, ctx, headroom.tokens)
        except _OverBudget as exc:
            log.info("llm call would pass the token cap: %s", exc, extra=_ids(result))
            return self._fallback(Fallback.TOKEN_CAP, result)
        except CircuitBreakerError:
            return self._fallback(Fallback.BREAKER_OPEN, result)
        except (TimeoutError, openai.APITimeoutError):
            return self._fallback(Fallback.TIMEOUT, result)
        except (BadResponse, openai.APIResponseValidationError):
            return self._fallback(Fallback.BAD_RESPONSE, result)
        except Exception:
            log.warning("llm reply failed", exc_info=True, extra=_ids(result))
            return self._fallback(Fallback.ERROR, result)

    async def _headroom(self, result: SkillResult) -> Headroom | Fallback:
        if self.budget is None:
            return Headroom(None)
        try:
            room = await self.budget.headroom(result.tenant_id, result.conversation_id)
        except Exception:
            # Without the counters the cap cannot be enforced: spend nothing.
            log.warning("token budget unavailable", exc_info=True, extra=_ids(result))
            return Fallback.BUDGET_UNAVAILABLE
        if not room.reached:
            return room
        scope = room.scope.value if room.scope else ""
        log.info("llm token cap reached", extra={**_ids(result), "scope": scope})
        return Fallback.TOKEN_CAP

    async def _answer(
        self,
        result: SkillResult,
        reply_id: str,
        deadline: float,
        tools: ToolBox | None,
        ctx: SkillContext | None,
        headroom: int | None,
    ) -> LlmAnswer:
        msg = result.context.nlu.accepted.message
        conv = _Conversation(
            messages=build_messages(result),
            tools=tools,
            offer=await _offer(tools, result.tenant_id),
            ctx=ctx
            or SkillContext(
                tenant_id=result.tenant_id,
                conversation_id=result.conversation_id,
                customer_id=msg.customer_id,
                language=result.context.nlu.language,
            ),
            event_id=msg.event_id,
            reply_id=reply_id,
            deadline=deadline,
            headroom=headroom,
        )
        text = await self._converse(conv)
        hits = result.context.hits
        text = strip_unknown_citations(text, len(hits))
        used = cited(text, hits)
        pending = next(
            (o for o in conv.outcomes if o.status is OutcomeStatus.NEEDS_CONFIRMATION), None
        )
        return LlmAnswer(
            text=text,
            cited=used,
            sources=_sources(result, [hit for _, hit in used], conv.outcomes),
            pending=pending,
            tool_outcomes=conv.outcomes,
            tokens=conv.tokens,
        )

    async def _converse(self, conv: _Conversation) -> str:
        """Call the model until it answers in text, running the tools it asks for."""
        for round_ in range(self.max_tool_rounds + 1):
            last = round_ == self.max_tool_rounds
            completion = await self.client.complete(
                conv.messages,
                user=conv.ctx.conversation_id,
                deadline=conv.deadline,
                tools=conv.offer.tools or None,
                tool_choice="none" if last else None,
                max_tokens=conv.answer_limit(),
            )
            await self._record(conv, completion)
            if completion.choices[0].finish_reason == "length":
                # Cut at max_tokens: half a sentence (or half a tool call's arguments)
                # is worse than the offline reply.
                raise BadResponse("the answer was cut off at max_tokens")
            message = completion.choices[0].message
            if message.tool_calls and not last and conv.tools is not None:
                await self._run_tools(conv, message)
                continue
            text = (message.content or "").strip()
            if not text:
                raise BadResponse("the answer is empty")
            return text
        raise BadResponse("no answer within the tool rounds")

    async def _run_tools(self, conv: _Conversation, message: ChatCompletionMessage) -> None:
        assert conv.tools is not None and message.tool_calls
        conv.messages.append(_assistant_turn(message))
        for raw in message.tool_calls:
            function = getattr(raw, "function", None)
            call = ToolCall(
                raw.id,
                function.name if function else "",
                function.arguments if function else "",
            )
            # A slow skill must not carry the reply past its deadline either.
            async with asyncio.timeout_at(conv.deadline):
                outcome = await conv.tools.call(call, conv.ctx, conv.event_id)
            conv.outcomes.append(outcome)
            conv.messages.append(tool_message(call, outcome))

    async def _record(self, conv: _Conversation, completion: ChatCompletion) -> None:
        usage = usage_of(completion, conv.messages, self.client.config.model)
        conv.tokens += usage.total_tokens
        tenant = conv.ctx.tenant_id
        metrics.LLM_TOKENS.labels(tenant, "prompt").inc(usage.prompt_tokens)
        metrics.LLM_TOKENS.labels(tenant, "completion").inc(usage.completion_tokens)
        if self.budget is None:
            return
        try:
            await self.budget.record(tenant, conv.ctx.conversation_id, conv.reply_id, usage)
        except Exception:
            # The reply is already paid for; losing the count must not lose the answer.
            log.error("could not record llm token usage", exc_info=True)

    def _fallback(self, reason: Fallback, result: SkillResult) -> Fallback:
        metrics.LLM_FALLBACKS.labels(reason.value).inc()
        log.info("reply composed offline", extra={**_ids(result), "reason": reason.value})
        return reason


async def _offer(tools: ToolBox | None, tenant_id: str) -> Offer:
    if tools is None:
        return NO_TOOLS
    try:
        return await tools.offer(tenant_id)
    except Exception:  # no allow-list, no tools: the model answers from the passages
        log.warning("could not read the tenant's allowed skills", exc_info=True)
        return NO_TOOLS


def _ids(result: SkillResult) -> dict[str, str]:
    return {"tenant": result.tenant_id, "conversation": result.conversation_id}
