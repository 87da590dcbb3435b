"""Clients of the third-party providers the skills act through (async httpx).

One small module per provider; `http` holds the shared client factory, retry policy and
error types; `providers` builds the clients from settings.
"""

from clawdesk.integrations.http import (
    AuthError,
    NotFound,
    ProviderError,
    ProviderUnavailable,
    RateLimited,
    RetryPolicy,
    ServerError,
    TransientError,
    make_client,
)
from clawdesk.integrations.providers import Integrations, NotConfigured, ProviderSettings

__all__ = [
    "AuthError",
    "Integrations",
    "NotConfigured",
    "NotFound",
    "ProviderError",
    "ProviderSettings",
    "ProviderUnavailable",
    "RateLimited",
    "RetryPolicy",
    "ServerError",
    "TransientError",
    "make_client",
]
