"""The one retry policy of clawdesk's outbound HTTP calls (provider clients and channel
connectors): exponential backoff with jitter, a bounded number of attempts and an
optional deadline, and the wait a provider asks for in `Retry-After` honoured (capped).

Callers decide *what* is worth retrying (a predicate on the exception); an exception
that carries a `retry_after` attribute (seconds, or None) names its own wait.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime

from tenacity import (
    AsyncRetrying,
    RetryCallState,
    retry_if_exception,
    stop_after_attempt,
    stop_before_delay,
    wait_exponential,
    wait_random,
)
from tenacity.stop import stop_base

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class RetryPolicy:
    """How hard a call is tried. The defaults suit a chat turn (a few seconds)."""

    attempts: int = 4
    initial_backoff_s: float = 0.2
    max_backoff_s: float = 5.0
    jitter_s: float = 0.2
    # A provider asking for longer gets this much wait (then the next attempt, or the end).
    max_retry_after_s: float = 30.0
    # No wait may end later than this after the first attempt; None: attempts only.
    deadline_s: float | None = None

    def __post_init__(self) -> None:
        if self.attempts < 1:
            raise ValueError("attempts must be >= 1")


def parse_retry_after(value: str | None, now: datetime | None = None) -> float | None:
    """Seconds to wait from a `Retry-After` header: delta-seconds ("2", "2.0") or HTTP date."""
    if not value:
        return None
    value = value.strip()
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        when = parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    return max(0.0, (when - (now or datetime.now(UTC))).total_seconds())


def requested_wait(error: BaseException | None) -> float | None:
    """The wait an exception says the provider asked for (its `retry_after`), if any."""
    value = getattr(error, "retry_after", None)
    return float(value) if isinstance(value, int | float) else None


class WaitRetryAfter:
    """Backoff with jitter, unless the failed attempt names a wait (then that, capped)."""

    def __init__(self, policy: RetryPolicy) -> None:
        self.policy = policy
        self.backoff = wait_exponential(
            multiplier=policy.initial_backoff_s, max=policy.max_backoff_s
        ) + wait_random(0, policy.jitter_s)

    def __call__(self, state: RetryCallState) -> float:
        asked = requested_wait(state.outcome.exception() if state.outcome else None)
        if asked is not None:
            return min(asked, self.policy.max_retry_after_s)
        return float(self.backoff(state))


def _log_retry(state: RetryCallState) -> None:
    error = state.outcome.exception() if state.outcome else None
    wait = state.next_action.sleep if state.next_action else 0.0
    log.warning(
        "outbound call failed; retrying",
        extra={"attempt": state.attempt_number, "wait_s": round(wait, 3), "error": str(error)},
    )


def retrying(policy: RetryPolicy, retry: Callable[[BaseException], bool]) -> AsyncRetrying:
    """The retry loop (`async for attempt in ...: with attempt:`) for `policy`, retrying
    the exceptions `retry` accepts and re-raising the last one when it gives up."""
    stop: stop_base = stop_after_attempt(policy.attempts)
    if policy.deadline_s is not None:
        stop = stop | stop_before_delay(policy.deadline_s)
    return AsyncRetrying(
        stop=stop,
        wait=WaitRetryAfter(policy),
        retry=retry_if_exception(retry),
        before_sleep=_log_retry,
        reraise=True,
    )
