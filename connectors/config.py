"""How the channel connectors are configured, and the policy of their outbound calls.

`ChannelSettings` holds every channel's credentials and endpoints (read from the
environment with the `CLAWDESK_` prefix, like `AppSettings`). The rest of the module
is the one retry policy every connector's `send` follows: retry what surely was not
delivered (connection refused, 429, 502-504) honouring Retry-After, inside a deadline
shorter than the dispatcher's stage timeout.
"""

from __future__ import annotations

import email.utils
import logging
import re
import time
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager, contextmanager
from functools import lru_cache

import httpx
from pydantic import Field, SecretStr
from pydantic_settings import BaseSettings, SettingsConfigDict
from tenacity import (
    AsyncRetrying,
    RetryCallState,
    retry_if_exception,
    stop_after_attempt,
    stop_before_delay,
    wait_exponential_jitter,
)


class ChannelSettings(BaseSettings):
    """Credentials, endpoints and limits of the messaging channels.

    A channel whose secret is unset is disabled: its webhook answers 404.
    A `*_tenant` left unset means the gateway's `default_tenant`.
    """

    model_config = SettingsConfigDict(
        env_prefix="CLAWDESK_", env_file=".env", extra="ignore", frozen=True
    )

    # WhatsApp Cloud API
    whatsapp_app_secret: SecretStr | None = None
    whatsapp_verify_token: SecretStr | None = None
    whatsapp_token: SecretStr | None = None
    whatsapp_phone_number_id: str = ""
    whatsapp_api_base: str = "https://graph.facebook.com/v21.0"
    whatsapp_tenants: dict[str, str] = Field(
        default_factory=dict, description="phone_number_id → tenant; empty: the default tenant"
    )

    # Telegram Bot API
    telegram_bot_token: SecretStr | None = None
    telegram_secret_token: SecretStr | None = None
    telegram_api_base: str = "https://api.telegram.org"
    telegram_tenant: str | None = None

    # WeChat official account (plain-text mode)
    wechat_token: SecretStr | None = None
    wechat_appid: str = ""
    wechat_secret: SecretStr | None = None
    wechat_api_base: str = "https://api.weixin.qq.com"
    wechat_tenant: str | None = None
    wechat_reply_wait_s: float = Field(
        default=4.5, description="how long the webhook waits to answer passively (WeChat: 5 s)"
    )
    wechat_passive_cutoff_s: float = Field(
        default=3.0,
        description="a reply composed later than this after receipt goes by the custom API",
    )

    # E-mail
    smtp_host: str = ""
    smtp_port: int = 587
    smtp_username: str = ""
    smtp_password: SecretStr | None = None
    smtp_starttls: bool = True
    smtp_implicit_tls: bool = False
    smtp_from: str = ""
    imap_host: str = ""
    imap_port: int = 993
    imap_ssl: bool = True
    imap_username: str = ""
    imap_password: SecretStr | None = None
    imap_mailbox: str = "INBOX"
    imap_poll_s: float = 30.0
    email_webhook_secret: SecretStr | None = None
    email_tenants: dict[str, str] = Field(
        default_factory=dict, description="recipient address → tenant; empty: the default tenant"
    )

    # In-app chat
    inapp_api_keys: dict[str, SecretStr] = Field(
        default_factory=dict, description="tenant → API key of its app backend"
    )
    inapp_callback_urls: dict[str, str] = Field(
        default_factory=dict, description="tenant → URL replies are POSTed to"
    )
    inapp_webhook_secret: SecretStr | None = None

    # Every webhook
    webhook_max_skew_s: float = Field(
        default=300.0, description="signed timestamps older or newer than this are refused"
    )
    webhook_max_body_bytes: int = Field(default=1024 * 1024, description="JSON/XML webhooks")
    email_max_body_bytes: int = Field(default=10 * 1024 * 1024, description="raw RFC 822")

    # Every outbound call
    http_timeout_s: float = 5.0
    send_attempts: int = Field(default=3, ge=1)
    send_deadline_s: float = Field(
        default=8.0, description="no retry starts later; below the dispatcher's stage timeout"
    )


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


@lru_cache(maxsize=1)
def channel_settings() -> ChannelSettings:
    """The process-wide channel settings."""
    return ChannelSettings()


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


RETRY_STATUSES = frozenset({429, 502, 503, 504})


def retry_after(response: httpx.Response) -> float | None:
    """Seconds from a Retry-After header (delta or HTTP date), if there is one."""
    value = response.headers.get("retry-after", "").strip()
    if not value:
        return None
    if value.isdigit():
        return float(value)
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    return max(0.0, when.timestamp() - time.time())


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


_backoff = wait_exponential_jitter(multiplier=0.5, max=4.0, jitter=0.5)


def _wait(state: RetryCallState) -> float:
    error = state.outcome.exception() if state.outcome else None
    if isinstance(error, ProviderUnavailable) and error.retry_after is not None:
        return error.retry_after
    return _backoff(state)


def send_retrying(settings: ChannelSettings) -> AsyncRetrying:
    """The retry loop of an outbound call (`async for attempt in ...: with attempt:`).

    Retries ProviderUnavailable, but not a request that may have reached the provider
    (a read timeout): that could send the customer a message twice.
    """
    return AsyncRetrying(
        stop=stop_after_attempt(settings.send_attempts)
        | stop_before_delay(settings.send_deadline_s),
        wait=_wait,
        retry=retry_if_exception(_retryable),
        reraise=True,
    )


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
