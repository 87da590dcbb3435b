"""Token usage per conversation and per tenant-day, in Postgres (migration 0005), and
the headroom under the caps that the reply stage spends its LLM calls from.

Postgres rather than Redis: usage is a cost record that must survive restarts (here
Redis is a cache that may be embedded, flushed or down); the ledger's key (the
completion id) makes recording idempotent under at-least-once redelivery; and the
reply stage already holds a pool. The price is one small transaction per LLM call,
next to a call that takes hundreds of milliseconds.

The reply stage reads the headroom once per reply and fits every call of that reply
into it (see `clawdesk.llm.replier`): a call's `max_tokens` is cut to what is left
after an estimate of its prompt, so one reply cannot run far past a cap. A
conversation's replies run one after another (the pipeline's topics are keyed by
conversation); a tenant's replies in different partitions run at the same moment, each
seeing the headroom before the others spend it, so together they may pass the tenant's
daily cap by up to one reply each.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum

from psycopg_pool import AsyncConnectionPool


class CapScope(StrEnum):
    """Which cap a conversation ran into."""

    CONVERSATION = "conversation"
    TENANT_DAY = "tenant_day"


@dataclass(frozen=True)
class Usage:
    """What one chat-completion call used, as the endpoint reported it."""

    completion_id: str
    model: str
    prompt_tokens: int
    completion_tokens: int
    total_tokens: int


@dataclass(frozen=True)
class Headroom:
    """Tokens a conversation may still use under the tighter of its caps."""

    tokens: int | None  # None: no cap applies
    scope: CapScope | None = None  # the cap that leaves the least

    @property
    def reached(self) -> bool:
        """Whether nothing is left."""
        return self.tokens is not None and self.tokens <= 0


@dataclass(frozen=True)
class Spent:
    """Tokens used so far by a conversation and by its tenant today (UTC)."""

    conversation: int
    tenant_today: int


_SPENT = """
SELECT
  (SELECT total_tokens FROM llm_usage_conversation WHERE conversation_id = %(conv)s) AS conv,
  (SELECT total_tokens FROM llm_usage_tenant_day
    WHERE tenant_id = %(tenant)s AND day = (now() AT TIME ZONE 'UTC')::date) AS tenant
"""

_LEDGER = """
INSERT INTO llm_calls (completion_id, tenant_id, conversation_id, reply_id, model,
                       prompt_tokens, completion_tokens, total_tokens)
VALUES (%(id)s, %(tenant)s, %(conv)s, %(reply)s, %(model)s, %(prompt)s, %(completion)s, %(total)s)
ON CONFLICT (completion_id) DO NOTHING
RETURNING completion_id
"""

_CONVERSATION = """
INSERT INTO llm_usage_conversation AS u (conversation_id, tenant_id, prompt_tokens,
                                         completion_tokens, total_tokens, calls)
VALUES (%(conv)s, %(tenant)s, %(prompt)s, %(completion)s, %(total)s, 1)
ON CONFLICT (conversation_id) DO UPDATE SET
  prompt_tokens = u.prompt_tokens + EXCLUDED.prompt_tokens,
  completion_tokens = u.completion_tokens + EXCLUDED.completion_tokens,
  total_tokens = u.total_tokens + EXCLUDED.total_tokens,
  calls = u.calls + 1,
  updated_at = now()
"""

_TENANT_DAY = """
INSERT INTO llm_usage_tenant_day AS u (tenant_id, day, prompt_tokens, completion_tokens,
                                       total_tokens, calls)
VALUES (%(tenant)s, (now() AT TIME ZONE 'UTC')::date, %(prompt)s, %(completion)s, %(total)s, 1)
ON CONFLICT (tenant_id, day) DO UPDATE SET
  prompt_tokens = u.prompt_tokens + EXCLUDED.prompt_tokens,
  completion_tokens = u.completion_tokens + EXCLUDED.completion_tokens,
  total_tokens = u.total_tokens + EXCLUDED.total_tokens,
  calls = u.calls + 1,
  updated_at = now()
"""


def _value(row: object, key: str, index: int) -> int:
    if row is None:
        return 0
    value = row[key] if isinstance(row, dict) else row[index]  # type: ignore[index]
    return int(value or 0)


@dataclass(frozen=True)
class TokenBudget:
    """Caps (0 = none) and the Postgres pool that holds the counters."""

    pool: AsyncConnectionPool
    conversation_cap: int
    tenant_daily_cap: int

    async def spent(self, tenant_id: str, conversation_id: str) -> Spent:
        """Tokens used so far by the conversation and by the tenant today."""
        async with self.pool.connection() as conn:
            cur = await conn.execute(_SPENT, {"conv": conversation_id, "tenant": tenant_id})
            row = await cur.fetchone()
        return Spent(_value(row, "conv", 0), _value(row, "tenant", 1))

    async def headroom(self, tenant_id: str, conversation_id: str) -> Headroom:
        """What the conversation may still spend, and under which cap."""
        if not self.conversation_cap and not self.tenant_daily_cap:
            return Headroom(None)
        spent = await self.spent(tenant_id, conversation_id)
        left: list[tuple[int, CapScope]] = []
        if self.conversation_cap:
            left.append((self.conversation_cap - spent.conversation, CapScope.CONVERSATION))
        if self.tenant_daily_cap:
            left.append((self.tenant_daily_cap - spent.tenant_today, CapScope.TENANT_DAY))
        tokens, scope = min(left, key=lambda item: item[0])
        return Headroom(tokens, scope)

    async def record(
        self, tenant_id: str, conversation_id: str, reply_id: str, usage: Usage
    ) -> bool:
        """Count one call's tokens (once per completion id); whether it was new."""
        params = {
            "id": usage.completion_id,
            "tenant": tenant_id,
            "conv": conversation_id,
            "reply": reply_id,
            "model": usage.model,
            "prompt": usage.prompt_tokens,
            "completion": usage.completion_tokens,
            "total": usage.total_tokens,
        }
        async with self.pool.connection() as conn, conn.transaction():
            cur = await conn.execute(_LEDGER, params)
            if await cur.fetchone() is None:
                return False
            await conn.execute(_CONVERSATION, params)
            await conn.execute(_TENANT_DAY, params)
        return True
