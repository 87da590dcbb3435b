"""One non-streaming chat completion against any OpenAI-compatible endpoint (OpenAI,
vLLM, Ollama, an OpenClaw gateway), bounded three ways:

- each HTTP request by `timeout_s` (the `openai` client's timeout);
- transient failures (408/409/429/5xx, connection errors) retried by the `openai`
  client itself (`max_retries`, exponential backoff, honouring Retry-After);
- the whole call, retries included, by the caller's deadline, which stays inside the
  stage's own timeout so that a slow endpoint ends in the offline reply, not in a
  failed stage;

and behind a circuit breaker, so that a failing endpoint is skipped for a while.
"""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass
from typing import Any

from openai import APITimeoutError, AsyncOpenAI, Timeout
from openai.types.chat import ChatCompletion

from clawdesk.llm.breaker import CircuitBreakerError, LlmBreaker
from clawdesk.ops import metrics


class BadResponse(Exception):
    """The endpoint answered 200 with something that is not a usable completion."""


@dataclass(frozen=True)
class LlmConfig:
    """Where the endpoint is and how calls to it are bounded."""

    base_url: str
    api_key: str
    model: str
    timeout_s: float = 4.0
    max_retries: int = 2
    max_tokens: int = 400
    temperature: float = 0.2
    breaker_failures: int = 5
    breaker_reset_s: float = 30.0


class LlmClient:
    """An `AsyncOpenAI` client with the breaker and metrics around each completion."""

    def __init__(self, config: LlmConfig) -> None:
        self.config = config
        self.openai = AsyncOpenAI(
            base_url=config.base_url,
            api_key=config.api_key,
            # Connecting should be quick even when generating is not.
            timeout=Timeout(config.timeout_s, connect=min(2.0, config.timeout_s)),
            max_retries=config.max_retries,
        )
        self.breaker = LlmBreaker(
            config.breaker_failures, config.breaker_reset_s, name=f"llm {config.base_url}"
        )
        self._guarded = self.breaker.decorate(self._complete)
        metrics.LLM_BREAKER_OPEN.set_function(lambda: 1.0 if self.breaker.opened else 0.0)

    @property
    def open(self) -> bool:
        """Whether the circuit is open (calls are refused without a request)."""
        return bool(self.breaker.opened)

    async def complete(
        self,
        messages: list[dict[str, Any]],
        *,
        user: str,
        deadline: float,
        tools: list[dict[str, Any]] | None = None,
        tool_choice: str | None = None,
        max_tokens: int | None = None,
    ) -> ChatCompletion:
        """One completion, finished before the loop time `deadline`.

        `max_tokens` lowers the configured limit on the answer's length (never raises it).
        Raises `CircuitBreakerError` (circuit open), `TimeoutError`, `BadResponse` or an
        `openai.APIError`.
        """
        limit = self.config.max_tokens
        if max_tokens is not None:
            limit = min(limit, max_tokens)
        request: dict[str, Any] = {
            "model": self.config.model,
            "messages": messages,
            "user": user,
            "max_tokens": limit,
            "temperature": self.config.temperature,
        }
        if tools:
            request["tools"] = tools
            if tool_choice:
                request["tool_choice"] = tool_choice
        try:
            completion: ChatCompletion = await self._guarded(request, deadline)
        except CircuitBreakerError:
            metrics.LLM_REQUESTS.labels("rejected").inc()
            raise
        return completion

    async def _complete(self, request: dict[str, Any], deadline: float) -> ChatCompletion:
        # The deadline is applied here, inside the breaker, so that it sees a timeout as
        # the endpoint's failure (a cancellation from outside would count as nothing).
        started = time.perf_counter()
        outcome = "error"
        try:
            async with asyncio.timeout_at(deadline):
                completion = await self.openai.chat.completions.create(**request)
            if not completion.choices:
                raise BadResponse("the completion has no choices")
            outcome = "ok"
            return completion
        except (TimeoutError, APITimeoutError):
            outcome = "timeout"
            raise
        finally:
            metrics.LLM_REQUESTS.labels(outcome).inc()
            metrics.LLM_LATENCY.observe(time.perf_counter() - started)

    async def aclose(self) -> None:
        """Close the HTTP connections."""
        await self.openai.close()
