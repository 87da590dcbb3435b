"""StripeClient against the fake Stripe API: refunds and their idempotency."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from clawdesk.integrations.http import NotFound, ProviderError
from clawdesk.integrations.stripe import StripeClient
from tests.fakes import stripe
from tests.fakes.fixtures import Fakes
from tests.integrations.cases import FAST


@pytest.fixture()
async def client(fakes: Fakes) -> AsyncIterator[StripeClient]:
    async with StripeClient(stripe.SECRET_KEY, base_url=fakes.stripe.base_url, retry=FAST) as c:
        yield c


async def test_payment_intent_is_found_by_order_name(client: StripeClient) -> None:
    pi = await client.find_payment_intent("#1001")
    assert pi is not None
    assert (pi.id, pi.amount_received, pi.currency) == ("pi_6231458710001", 8900, "eur")
    assert await client.find_payment_intent("#4040") is None


async def test_refund_is_form_encoded_with_bearer_and_idempotency_key(
    client: StripeClient, fakes: Fakes
) -> None:
    refund = await client.refund(
        "pi_6231458710001",
        2500,
        "requested_by_customer",
        "refund-conv1-evt1",
        metadata={"conversation_id": "conv1"},
    )
    assert (refund.amount, refund.currency, refund.status) == (2500, "eur", "succeeded")
    assert refund.metadata == {"conversation_id": "conv1"}
    call = fakes.stripe.calls_to("POST", "/v1/refunds")[0]
    assert call.headers["authorization"] == f"Bearer {stripe.SECRET_KEY}"
    assert call.headers["content-type"] == "application/x-www-form-urlencoded"
    assert call.headers["idempotency-key"] == "refund-conv1-evt1"


async def test_same_idempotency_key_twice_makes_one_refund(
    client: StripeClient, fakes: Fakes
) -> None:
    first = await client.refund("pi_6231458710002", 1000, None, "same-key")
    second = await client.refund("pi_6231458710002", 1000, None, "same-key")
    assert first == second
    assert len(fakes.stripe.refunds) == 1
    assert fakes.stripe.refunded["pi_6231458710002"] == 1000


async def test_refund_retried_after_5xx_pays_once(client: StripeClient, fakes: Fakes) -> None:
    fakes.stripe.fail_next(1, status=500)
    refund = await client.refund("pi_6231458710003", None, "duplicate", "key-after-500")
    assert refund.amount == 15900
    assert len(fakes.stripe.calls_to("POST", "/v1/refunds")) == 2
    assert len(fakes.stripe.refunds) == 1


async def test_reusing_a_key_with_other_parameters_is_refused(client: StripeClient) -> None:
    await client.refund("pi_6231458710005", 100, None, "reused")
    with pytest.raises(ProviderError) as caught:
        await client.refund("pi_6231458710005", 200, None, "reused")
    assert (caught.value.status, caught.value.code) == (400, "idempotency_error")


async def test_unknown_payment_intent_is_not_found(client: StripeClient) -> None:
    with pytest.raises(NotFound) as caught:
        await client.refund("pi_nope", 100, None, "k-missing")
    assert caught.value.code == "resource_missing"


async def test_refunding_more_than_was_paid_is_refused(client: StripeClient) -> None:
    with pytest.raises(ProviderError) as caught:
        await client.refund("pi_6231458710001", 10_000, None, "k-too-much")
    assert caught.value.code == "amount_too_large"


async def test_fully_refunded_payment_cannot_be_refunded_again(client: StripeClient) -> None:
    with pytest.raises(ProviderError) as caught:
        await client.refund("pi_6231458710007", None, None, "k-again")
    assert caught.value.code == "charge_already_refunded"
