"""Sandbox providers: local HTTP servers that follow Shopify's, Stripe's, Zendesk's,
DHL's and HubSpot's documented APIs, seeded with the demo shop's orders.

The test suite runs the provider clients against them, and `clawdesk eval
conversations` starts them for its private system so that refunds, cancellations and
tickets run end to end (the packaged demo shop alone is read-only). They keep their
data in memory: nothing here is a shop to run a business on.
"""

from __future__ import annotations

from contextlib import AbstractContextManager
from dataclasses import dataclass, field
from types import TracebackType

from clawdesk.sandbox import dhl, hubspot, shopify, stripe, zendesk
from clawdesk.sandbox.base import FakeProvider, Served

__all__ = ["Sandbox"]


@dataclass
class Sandbox(AbstractContextManager["Sandbox"]):
    """Every sandbox provider on its own free loopback port, for a `with` block."""

    shopify: shopify.FakeShopify = field(default_factory=shopify.FakeShopify)
    dhl: dhl.FakeDhl = field(default_factory=dhl.FakeDhl)
    stripe: stripe.FakeStripe = field(default_factory=stripe.FakeStripe)
    hubspot: hubspot.FakeHubSpot = field(default_factory=hubspot.FakeHubSpot)
    zendesk: zendesk.FakeZendesk = field(default_factory=zendesk.FakeZendesk)
    _served: list[Served] = field(default_factory=list, init=False, repr=False)

    def all(self) -> list[FakeProvider]:
        """The providers, in a fixed order."""
        return [self.shopify, self.dhl, self.stripe, self.hubspot, self.zendesk]

    def start(self) -> Sandbox:
        """Serve every provider (each in a background thread)."""
        self._served = [Served(p).start() for p in self.all()]
        return self

    def stop(self) -> None:
        """Stop serving."""
        for served in self._served:
            served.stop()
        self._served = []

    def __enter__(self) -> Sandbox:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    def env(self) -> dict[str, str]:
        """The worker settings (`CLAWDESK_*` variables) that point every provider here."""
        return {
            "CLAWDESK_SHOPIFY_URL": self.shopify.base_url,
            "CLAWDESK_SHOPIFY_TOKEN": shopify.TOKEN,
            "CLAWDESK_DHL_URL": self.dhl.base_url,
            "CLAWDESK_DHL_API_KEY": dhl.API_KEY,
            "CLAWDESK_STRIPE_URL": self.stripe.base_url,
            "CLAWDESK_STRIPE_SECRET_KEY": stripe.SECRET_KEY,
            "CLAWDESK_HUBSPOT_URL": self.hubspot.base_url,
            "CLAWDESK_HUBSPOT_TOKEN": hubspot.TOKEN,
            "CLAWDESK_ZENDESK_URL": self.zendesk.base_url,
            "CLAWDESK_ZENDESK_EMAIL": zendesk.EMAIL,
            "CLAWDESK_ZENDESK_API_TOKEN": zendesk.API_TOKEN,
        }
