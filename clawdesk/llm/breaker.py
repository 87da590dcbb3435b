"""The circuit breaker in front of the LLM endpoint (the `circuitbreaker` library).

After `failure_threshold` failed calls in a row the circuit opens and the reply stage
skips the LLM (composing offline) for `recovery_timeout` seconds; then calls go through
again and the first success closes it.
"""

from __future__ import annotations

from types import TracebackType

import openai
from circuitbreaker import CircuitBreaker, CircuitBreakerError

__all__ = ["CircuitBreakerError", "LlmBreaker", "counts_as_failure"]

# Answers that blame this one request, not the endpoint: a healthy endpoint gives them.
_REQUEST_FAULTS = (openai.BadRequestError, openai.UnprocessableEntityError)


def counts_as_failure(exc_type: type[BaseException], exc: BaseException | None) -> bool:
    """Whether a call's exception says the endpoint is unhealthy (timeouts, 429/5xx after
    retries, refused connections, rejected credentials, unusable answers)."""
    return issubclass(exc_type, Exception) and not issubclass(exc_type, _REQUEST_FAULTS)


class LlmBreaker(CircuitBreaker):
    """A per-worker breaker that ignores cancellation.

    The library resets the failure count on any exception it does not count, and a
    cancelled call (the worker stopping) says nothing about the endpoint either way.
    """

    def __init__(self, failure_threshold: int, recovery_timeout: float, name: str) -> None:
        super().__init__(
            failure_threshold=failure_threshold,
            recovery_timeout=recovery_timeout,
            expected_exception=counts_as_failure,
            name=name,
        )

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> bool:
        if exc_type is not None and not issubclass(exc_type, Exception):
            return False
        return bool(super().__exit__(exc_type, exc, tb))
