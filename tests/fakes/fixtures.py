"""Pytest fixtures serving every fake provider; import them into a conftest."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

import pytest
from pydantic import SecretStr

from clawdesk.integrations import ProviderSettings
from tests.fakes import dhl, hubspot, shopify, stripe, zendesk
from tests.fakes.base import FakeProvider, Served


@dataclass
class Fakes:
    shopify: shopify.FakeShopify
    dhl: dhl.FakeDhl
    stripe: stripe.FakeStripe
    hubspot: hubspot.FakeHubSpot
    zendesk: zendesk.FakeZendesk

    def all(self) -> list[FakeProvider]:
        return [self.shopify, self.dhl, self.stripe, self.hubspot, self.zendesk]


@pytest.fixture(scope="session")
def fake_servers() -> Iterator[Fakes]:
    """Every fake, listening on its own free loopback port for the session."""
    fakes = Fakes(
        shopify.FakeShopify(),
        dhl.FakeDhl(),
        stripe.FakeStripe(),
        hubspot.FakeHubSpot(),
        zendesk.FakeZendesk(),
    )
    served = [Served(f).start() for f in fakes.all()]
    yield fakes
    for s in served:
        s.stop()


@pytest.fixture()
def fakes(fake_servers: Fakes) -> Fakes:
    """The fakes with their seed data restored and no pending faults."""
    for fake in fake_servers.all():
        fake.reset()
    return fake_servers


@pytest.fixture()
def provider_settings(fakes: Fakes) -> ProviderSettings:
    """Settings pointing every provider at its fake, with quick backoff."""
    return ProviderSettings(
        shopify_url=fakes.shopify.base_url,
        shopify_token=SecretStr(shopify.TOKEN),
        dhl_url=fakes.dhl.base_url,
        dhl_api_key=SecretStr(dhl.API_KEY),
        stripe_url=fakes.stripe.base_url,
        stripe_secret_key=SecretStr(stripe.SECRET_KEY),
        hubspot_url=fakes.hubspot.base_url,
        hubspot_token=SecretStr(hubspot.TOKEN),
        zendesk_url=fakes.zendesk.base_url,
        zendesk_email=zendesk.EMAIL,
        zendesk_api_token=SecretStr(zendesk.API_TOKEN),
        provider_timeout_s=5.0,
        provider_max_attempts=3,
        provider_max_retry_after_s=5.0,
    )
