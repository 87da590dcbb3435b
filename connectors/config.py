"""The policy of the channel connectors' outbound calls.

Retry what surely was not delivered (connection refused, 429, 502-504) honouring
Retry-After, inside a deadline (`clawdesk.retrying`, the policy the provider clients
share). The settings themselves live in `clawdesk.settings.ChannelSettings`.
"""

from __future__ import annotations

import logging
import re
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager, contextmanager

import httpx
from pydantic import SecretStr
from tenacity import AsyncRetrying

from clawdesk.retrying import RetryPolicy, parse_retry_after, retrying
from clawdesk.settings import ChannelSettings, channel_settings

__all__ = [
    "RETRY_STATUSES",
    "ChannelSettings",
    "DeliveryError",
    "NotSendable",
    "ProviderUnavailable",
    "RedactUrlSecrets",
    "channel_settings",
    "http_client",
    "raise_for_retry",
    "require",
    "retry_after",
    "send_policy",
    "send_retrying",
    "transport_errors",
    "using_client",
]


class RedactUrlSecrets(logging.Filter):
    """Blank the credentials some providers put in URLs (Telegram's `/bot<token>/`,
    WeChat's `access_token=`) out of httpx's request log lines."""

    _SECRET = re.compile(r"(/bot)[^/\s]+|(access_token=)[^&\s\"]+")

    def filter(self, record: logging.LogRecord) -> bool:
        if isinstance(record.args, tuple):
            record.args = tuple(self._redact(a) for a in record.args)
        return True

    def _redact(self, arg: object) -> object:
        if isinstance(arg, str | httpx.URL):
            return self._SECRET.sub(lambda m: (m.group(1) or m.group(2)) + "***", str(arg))
        return arg


def _install_redaction() -> None:
    httpx_log = logging.getLogger("httpx")
    if not any(isinstance(f, RedactUrlSecrets) for f in httpx_log.filters):
        httpx_log.addFilter(RedactUrlSecrets())


_install_redaction()


class ProviderUnavailable(ConnectionError):
    """The provider could not take the message now (rate limit, outage); retry later.

    A ConnectionError, so the dispatcher's guard treats it as transient.
    """

    def __init__(
        self, message: str, retry_after: float | None = None, *, maybe_delivered: bool = False
    ) -> None:
        super().__init__(message)
        self.retry_after = retry_after
        # The request may have reached the provider (the answer got lost): retrying here
        # could send the customer a message twice, so only the dispatcher may decide to.
        self.maybe_delivered = maybe_delivered


class DeliveryError(RuntimeError):
    """The provider refused the message for good (bad recipient, blocked, bad token)."""


class NotSendable(DeliveryError):
    """The connector did not send the message: the channel would not take it now (its
    message says why, for the agent to read)."""


RETRY_STATUSES = frozenset({429, 502, 503, 504})


def retry_after(response: httpx.Response) -> float | None:
    """Seconds from a Retry-After header (delta or HTTP date), if there is one."""
    return parse_retry_after(response.headers.get("retry-after"))


@contextmanager
def transport_errors(what: str) -> Iterator[None]:
    """httpx's connection failures as ProviderUnavailable (transient for the dispatcher)."""
    try:
        yield
    except (httpx.ConnectError, httpx.ConnectTimeout) as err:
        raise ProviderUnavailable(f"{what}: {type(err).__name__}") from err
    except httpx.TransportError as err:
        raise ProviderUnavailable(f"{what}: {type(err).__name__}", maybe_delivered=True) from err


def raise_for_retry(response: httpx.Response, what: str) -> None:
    """Raise ProviderUnavailable for a status worth retrying."""
    if response.status_code in RETRY_STATUSES:
        raise ProviderUnavailable(
            f"{what}: HTTP {response.status_code}", retry_after=retry_after(response)
        )


def send_policy(settings: ChannelSettings) -> RetryPolicy:
    """The retry policy of one outbound call: a few attempts inside `send_deadline_s`."""
    return RetryPolicy(
        attempts=settings.send_attempts,
        initial_backoff_s=0.5,
        max_backoff_s=4.0,
        jitter_s=0.5,
        max_retry_after_s=settings.send_deadline_s,
        deadline_s=settings.send_deadline_s,
    )


def send_retrying(settings: ChannelSettings) -> AsyncRetrying:
    """The retry loop of an outbound call (`async for attempt in ...: with attempt:`).

    Retries ProviderUnavailable, but not a request that may have reached the provider
    (a read timeout): that could send the customer a message twice. A Retry-After longer
    than the deadline ends the loop at once; the dispatcher waits it out instead.
    """
    return retrying(send_policy(settings), _retryable)


def _retryable(error: BaseException) -> bool:
    return isinstance(error, ProviderUnavailable) and not error.maybe_delivered


def http_client(settings: ChannelSettings) -> httpx.AsyncClient:
    """A client for one send (or one poll loop) with the configured timeout."""
    return httpx.AsyncClient(timeout=settings.http_timeout_s)


@asynccontextmanager
async def using_client(
    settings: ChannelSettings, client: httpx.AsyncClient | None
) -> AsyncIterator[httpx.AsyncClient]:
    """The caller's client, or a fresh one closed afterwards."""
    if client is not None:
        yield client
        return
    async with http_client(settings) as fresh:
        yield fresh


def require(secret: SecretStr | None, name: str) -> str:
    """A configured secret's value; DeliveryError names the setting when it is unset."""
    if secret is None or not secret.get_secret_value():
        raise DeliveryError(f"{name} is not configured")
    return secret.get_secret_value()
