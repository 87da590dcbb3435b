"""The HTTP layer every provider client shares: one httpx client, one retry policy,
one error hierarchy.

Retries (the policy of `clawdesk.retrying`, shared with the channel connectors): 429
(waiting what `Retry-After` says, capped), 5xx and transport errors (connect/read
failures, timeouts), with exponential backoff and jitter, a bounded number of attempts.
Any other 4xx is final and raised as a typed `ProviderError`.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import Any, ClassVar, Self

import httpx

from clawdesk.retrying import RetryPolicy, parse_retry_after, retrying

log = logging.getLogger(__name__)

USER_AGENT = "clawdesk/0.1 (+https://github.com/clawdesk)"


class ProviderError(Exception):
    """A provider refused or failed a request. `status` is 0 when no response came."""

    def __init__(
        self,
        status: int,
        code: str | None,
        message: str,
        provider: str,
        *,
        retry_after: float | None = None,
    ) -> None:
        super().__init__(f"{provider} {status} {code or ''}: {message}".replace("  ", " "))
        self.status = status
        self.code = code
        self.message = message
        self.provider = provider
        self.retry_after = retry_after


class AuthError(ProviderError):
    """401/403: the credentials are wrong or lack a scope. Never retried."""


class NotFound(ProviderError):
    """404 (or the provider's own "no such object" code)."""


class TransientError(ProviderError):
    """Worth trying again later: the provider is overloaded, down or unreachable."""


class RateLimited(TransientError):
    """429. `retry_after` holds the seconds the provider asked us to wait, if it said."""


class ServerError(TransientError):
    """5xx."""


class ProviderUnavailable(TransientError):
    """No HTTP response at all (connection refused, reset, timed out)."""


def make_client(
    base_url: str, headers: Mapping[str, str] | None = None, timeout: float = 10.0
) -> httpx.AsyncClient:
    """An httpx client for one provider: base URL, default headers, a bound on every call."""
    merged = {"User-Agent": USER_AGENT, "Accept": "application/json", **(headers or {})}
    return httpx.AsyncClient(
        base_url=base_url.rstrip("/"),
        headers=merged,
        timeout=httpx.Timeout(timeout, connect=min(timeout, 5.0)),
        follow_redirects=False,
    )


def is_transient(exc: BaseException) -> bool:
    """Whether a failed attempt is worth repeating."""
    return isinstance(exc, TransientError)


class ProviderClient:
    """Base of the provider clients: sends with retries and turns errors into exceptions.

    Subclasses set `provider` and override `error_details` to read their error body.
    """

    provider: ClassVar[str] = "provider"

    def __init__(self, http: httpx.AsyncClient, retry: RetryPolicy | None = None) -> None:
        self.http = http
        self.retry = retry or RetryPolicy()

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        """Close the connection pool."""
        await self.http.aclose()

    async def request(self, method: str, path: str, **kwargs: Any) -> httpx.Response:
        """Send a request, retrying transient failures; raise `ProviderError` on failure."""
        async for attempt in retrying(self.retry, is_transient):
            with attempt:
                return await self._send_once(method, path, **kwargs)
        raise AssertionError("unreachable: tenacity either returns or reraises")

    async def _send_once(self, method: str, path: str, **kwargs: Any) -> httpx.Response:
        try:
            response = await self.http.request(method, path, **kwargs)
        except httpx.TransportError as exc:
            raise ProviderUnavailable(0, type(exc).__name__, str(exc), self.provider) from exc
        if response.status_code >= 400:
            raise self.error_for(response)
        return response

    def error_for(self, response: httpx.Response) -> ProviderError:
        """The typed exception for an error response."""
        status = response.status_code
        code, message = self.error_details(response)
        retry_after = parse_retry_after(response.headers.get("Retry-After"))
        cls: type[ProviderError]
        if status in (401, 403):
            cls = AuthError
        elif status == 404:
            cls = NotFound
        elif status == 429:
            cls = RateLimited
        elif status >= 500:
            cls = ServerError
        else:
            cls = ProviderError
        return cls(status, code, message, self.provider, retry_after=retry_after)

    def error_details(self, response: httpx.Response) -> tuple[str | None, str]:
        """(code, message) from an error body. The default reads common JSON shapes."""
        body = json_or_none(response)
        if isinstance(body, dict):
            for key in ("message", "detail", "error", "errors"):
                if key in body:
                    return None, flatten_message(body[key])
        return None, response.reason_phrase or f"HTTP {response.status_code}"


def json_or_none(response: httpx.Response) -> Any:
    """The response body as JSON, or None if it is not JSON."""
    try:
        return response.json()
    except ValueError:
        return None


def flatten_message(value: Any) -> str:
    """A readable message from a string, a list or a {field: [messages]} mapping."""
    if isinstance(value, str):
        return value
    if isinstance(value, list):
        return "; ".join(flatten_message(v) for v in value)
    if isinstance(value, dict):
        return "; ".join(f"{k}: {flatten_message(v)}" for k, v in value.items())
    return str(value)
