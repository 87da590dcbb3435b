"""One client per provider, pointed at its fake, for the tests every provider shares."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

from clawdesk.integrations.dhl import DhlTrackingClient
from clawdesk.integrations.http import ProviderClient, RetryPolicy
from clawdesk.integrations.hubspot import HubSpotClient
from clawdesk.integrations.shopify import ShopifyClient
from clawdesk.integrations.stripe import StripeClient
from clawdesk.integrations.zendesk import ZendeskClient
from tests.fakes import dhl, hubspot, shopify, stripe, zendesk
from tests.fakes.base import FakeProvider
from tests.fakes.fixtures import Fakes

# Quick backoff so the 5xx tests take milliseconds; Retry-After is honoured as given.
FAST = RetryPolicy(
    attempts=3, initial_backoff_s=0.05, max_backoff_s=0.2, jitter_s=0.05, max_retry_after_s=5.0
)


@dataclass(frozen=True)
class Case:
    """How to build a provider's client (right or wrong secret) and call it."""

    name: str
    fake: Callable[[Fakes], FakeProvider]
    make: Callable[[Fakes, str | None], ProviderClient]
    ok: Callable[[Any], Awaitable[Any]]
    missing: Callable[[Any], Awaitable[Any]]


CASES = [
    Case(
        "shopify",
        lambda f: f.shopify,
        lambda f, bad: ShopifyClient(f.shopify.base_url, bad or shopify.TOKEN, retry=FAST),
        lambda c: c.get_order_by_name("#1001"),
        lambda c: c.get_order(999),
    ),
    Case(
        "dhl",
        lambda f: f.dhl,
        lambda f, bad: DhlTrackingClient(bad or dhl.API_KEY, base_url=f.dhl.base_url, retry=FAST),
        lambda c: c.track("4817263950"),
        lambda c: c.track("0000000000"),
    ),
    Case(
        "stripe",
        lambda f: f.stripe,
        lambda f, bad: StripeClient(
            bad or stripe.SECRET_KEY, base_url=f.stripe.base_url, retry=FAST
        ),
        lambda c: c.find_payment_intent("#1001"),
        lambda c: c.get_refund("re_missing"),
    ),
    Case(
        "hubspot",
        lambda f: f.hubspot,
        lambda f, bad: HubSpotClient(bad or hubspot.TOKEN, base_url=f.hubspot.base_url, retry=FAST),
        lambda c: c.find_contact("lena.vogel@example.com"),
        lambda c: c.get_contact("424242"),
    ),
    Case(
        "zendesk",
        lambda f: f.zendesk,
        lambda f, bad: ZendeskClient(
            f.zendesk.base_url, zendesk.EMAIL, bad or zendesk.API_TOKEN, retry=FAST
        ),
        lambda c: c.find_by_external_id("conv-1"),
        lambda c: c.get_ticket(424242),
    ),
]
