"""LLM mode of the reply stage: any OpenAI-compatible endpoint (OpenAI, vLLM, Ollama, an
OpenClaw gateway) writes the reply from the KB passages and skill results, and may call
the tenant's allowed skills as tools. Off unless `CLAWDESK_LLM_BASE_URL` and
`CLAWDESK_LLM_API_KEY` are both set; every failure falls back to the offline reply.

Modules: `client` (the `openai` client, timeout, retries, breaker), `breaker`,
`budget` (token counters and caps in Postgres), `prompt`, `tools` (skills as tools,
through the skills stage's runtime and runner), `replier` (one reply), `echo_server`
(a dev/bench endpoint).
"""

from __future__ import annotations

import logging

from psycopg_pool import AsyncConnectionPool

from clawdesk.llm.budget import TokenBudget
from clawdesk.llm.client import LlmClient, LlmConfig
from clawdesk.llm.replier import Fallback, LlmAnswer, LlmReplier
from clawdesk.llm.tools import ToolBox
from clawdesk.settings import AppSettings

__all__ = [
    "Fallback",
    "LlmAnswer",
    "LlmClient",
    "LlmConfig",
    "LlmReplier",
    "ToolBox",
    "build_replier",
]

log = logging.getLogger(__name__)

# The LLM's deadline stays this share of the stage's timeout at most, so that a slow
# endpoint ends in the offline reply instead of a timed-out (and retried) stage.
STAGE_SHARE = 0.8


def config_from(settings: AppSettings) -> LlmConfig:
    """The client's configuration from the settings."""
    key = settings.llm_api_key.get_secret_value() if settings.llm_api_key else ""
    return LlmConfig(
        base_url=settings.llm_base_url.strip(),
        api_key=key,
        model=settings.llm_model,
        timeout_s=settings.llm_timeout_s,
        max_retries=settings.llm_max_retries,
        max_tokens=settings.llm_max_tokens,
        temperature=settings.llm_temperature,
        breaker_failures=settings.llm_breaker_failures,
        breaker_reset_s=settings.llm_breaker_reset_s,
    )


def deadline_for(settings: AppSettings) -> float:
    """The LLM's share of one reply's time."""
    limit = STAGE_SHARE * settings.stage_timeout_s
    if settings.llm_deadline_s > limit:
        log.warning(
            "llm_deadline_s is cut to fit the stage timeout",
            extra={"llm_deadline_s": settings.llm_deadline_s, "used": limit},
        )
    return min(settings.llm_deadline_s, limit)


def build_replier(settings: AppSettings, pool: AsyncConnectionPool | None) -> LlmReplier | None:
    """The worker's LLM replier, or None in offline mode (no URL or no key).

    Without a pool there are no token caps (the counters live in Postgres).
    """
    if not settings.llm_enabled:
        return None
    budget = None
    if pool is not None:
        budget = TokenBudget(
            pool, settings.llm_conversation_token_cap, settings.llm_tenant_daily_token_cap
        )
    return LlmReplier(
        LlmClient(config_from(settings)),
        budget=budget,
        deadline_s=deadline_for(settings),
        max_tool_rounds=settings.llm_max_tool_rounds,
    )
