"""The provider clients a worker uses, built lazily from settings.

`ProviderSettings` reads the provider fields from any settings object (the app's
`AppSettings` once it has them); a provider whose URL or secret is missing is simply
not configured, and a skill that needs it answers "unavailable" instead of failing
the stage.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, TypeVar

from pydantic import BaseModel, ConfigDict, Field, SecretStr

from clawdesk.integrations.dhl import DhlTrackingClient
from clawdesk.integrations.http import ProviderClient, RetryPolicy
from clawdesk.integrations.hubspot import HubSpotClient
from clawdesk.integrations.shopify import ShopifyClient
from clawdesk.integrations.stripe import StripeClient
from clawdesk.integrations.zendesk import ZendeskClient

C = TypeVar("C", bound=ProviderClient)


class NotConfigured(RuntimeError):
    """A provider is needed but its settings are missing."""

    def __init__(self, provider: str, missing: list[str]) -> None:
        super().__init__(f"{provider} is not configured (missing: {', '.join(missing)})")
        self.provider = provider
        self.missing = missing


class ProviderSettings(BaseModel):
    """Where the providers are and how to authenticate. Field names match AppSettings."""

    model_config = ConfigDict(frozen=True, from_attributes=True, extra="ignore")

    shopify_url: str = Field(default="", description="https://{shop}.myshopify.com")
    shopify_token: SecretStr | None = None
    shopify_api_version: str = "2024-07"
    dhl_url: str = "https://api-eu.dhl.com"
    dhl_api_key: SecretStr | None = None
    stripe_url: str = "https://api.stripe.com"
    stripe_secret_key: SecretStr | None = None
    hubspot_url: str = "https://api.hubapi.com"
    hubspot_token: SecretStr | None = None
    zendesk_url: str = Field(default="", description="https://{subdomain}.zendesk.com")
    zendesk_email: str = ""
    zendesk_api_token: SecretStr | None = None
    provider_timeout_s: float = Field(default=10.0, gt=0)
    provider_max_attempts: int = Field(default=4, ge=1, le=10)
    provider_max_retry_after_s: float = Field(default=30.0, ge=0)

    @property
    def retry(self) -> RetryPolicy:
        return RetryPolicy(
            attempts=self.provider_max_attempts, max_retry_after_s=self.provider_max_retry_after_s
        )


def _require(provider: str, **values: object) -> None:
    missing = [name for name, value in values.items() if not value]
    if missing:
        raise NotConfigured(provider, missing)


def _secret(value: SecretStr | None) -> str:
    return value.get_secret_value() if value else ""


class Integrations:
    """One client per provider, created on first use and closed together."""

    def __init__(self, settings: ProviderSettings) -> None:
        self.settings = settings
        self._clients: dict[str, ProviderClient] = {}

    @classmethod
    def from_settings(cls, settings: Any) -> Integrations:
        """Read the provider fields of any settings object (missing fields: defaults)."""
        return cls(ProviderSettings.model_validate(settings, from_attributes=True))

    def _client(
        self, provider: str, kind: type[C], build: Callable[[], C], **required: object
    ) -> C:
        """The cached client of `provider`; built on first use if every `required` is set."""
        client = self._clients.get(provider)
        if client is None:
            _require(provider, **required)
            client = self._clients[provider] = build()
        assert isinstance(client, kind)
        return client

    @property
    def shopify(self) -> ShopifyClient:
        s = self.settings
        return self._client(
            "shopify",
            ShopifyClient,
            lambda: ShopifyClient(
                s.shopify_url,
                _secret(s.shopify_token),
                api_version=s.shopify_api_version,
                timeout=s.provider_timeout_s,
                retry=s.retry,
            ),
            shopify_url=s.shopify_url,
            shopify_token=s.shopify_token,
        )

    @property
    def dhl(self) -> DhlTrackingClient:
        s = self.settings
        return self._client(
            "dhl",
            DhlTrackingClient,
            lambda: DhlTrackingClient(
                _secret(s.dhl_api_key),
                base_url=s.dhl_url,
                timeout=s.provider_timeout_s,
                retry=s.retry,
            ),
            dhl_url=s.dhl_url,
            dhl_api_key=s.dhl_api_key,
        )

    @property
    def stripe(self) -> StripeClient:
        s = self.settings
        return self._client(
            "stripe",
            StripeClient,
            lambda: StripeClient(
                _secret(s.stripe_secret_key),
                base_url=s.stripe_url,
                timeout=s.provider_timeout_s,
                retry=s.retry,
            ),
            stripe_url=s.stripe_url,
            stripe_secret_key=s.stripe_secret_key,
        )

    @property
    def hubspot(self) -> HubSpotClient:
        s = self.settings
        return self._client(
            "hubspot",
            HubSpotClient,
            lambda: HubSpotClient(
                _secret(s.hubspot_token),
                base_url=s.hubspot_url,
                timeout=s.provider_timeout_s,
                retry=s.retry,
            ),
            hubspot_url=s.hubspot_url,
            hubspot_token=s.hubspot_token,
        )

    @property
    def zendesk(self) -> ZendeskClient:
        s = self.settings
        return self._client(
            "zendesk",
            ZendeskClient,
            lambda: ZendeskClient(
                s.zendesk_url,
                s.zendesk_email,
                _secret(s.zendesk_api_token),
                timeout=s.provider_timeout_s,
                retry=s.retry,
            ),
            zendesk_url=s.zendesk_url,
            zendesk_email=s.zendesk_email,
            zendesk_api_token=s.zendesk_api_token,
        )

    async def aclose(self) -> None:
        """Close every client created so far."""
        clients, self._clients = list(self._clients.values()), {}
        for client in clients:
            await client.aclose()
