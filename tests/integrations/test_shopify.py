"""ShopifyClient against the fake Admin API serving the demo orders."""

from __future__ import annotations

from collections.abc import AsyncIterator
from decimal import Decimal

import pytest

from clawdesk.integrations.http import ProviderError
from clawdesk.integrations.shopify import ShopifyClient
from tests.fakes import shopify
from tests.fakes.fixtures import Fakes
from tests.integrations.cases import FAST


@pytest.fixture()
async def client(fakes: Fakes) -> AsyncIterator[ShopifyClient]:
    async with ShopifyClient(fakes.shopify.base_url, shopify.TOKEN, retry=FAST) as c:
        yield c


@pytest.mark.parametrize("reference", ["#1002", "1002", " 1002 "])
async def test_order_by_name_returns_the_typed_order(
    client: ShopifyClient, fakes: Fakes, reference: str
) -> None:
    order = await client.get_order_by_name(reference)
    assert order is not None
    assert (order.id, order.name, order.currency) == (6231458710002, "#1002", "USD")
    assert order.total_price == Decimal("313.90")
    assert order.line_items[0].title == "ClawHome Robot Vacuum R3"
    assert order.last_fulfillment is not None
    assert order.last_fulfillment.tracking_number == "YT2631100012345678"
    call = fakes.shopify.calls[-1]
    assert call.path == "/admin/api/2024-07/orders.json"
    assert "name=%231002" in call.query and "status=any" in call.query
    assert call.headers["x-shopify-access-token"] == shopify.TOKEN


async def test_unknown_order_name_is_none(client: ShopifyClient) -> None:
    assert await client.get_order_by_name("#9999") is None


async def test_cancelled_orders_are_found_too(client: ShopifyClient) -> None:
    order = await client.get_order_by_name("#1007")
    assert order is not None and order.cancelled
    assert order.total_refunded == Decimal("29.85")


async def test_list_orders_returns_the_customers_orders(client: ShopifyClient) -> None:
    orders = await client.list_orders("CAMILLE.MARTIN@example.fr")
    assert [o.name for o in orders] == ["#1007"]
    assert await client.list_orders("nobody@example.com") == []


async def test_cancel_order_cancels_once(client: ShopifyClient, fakes: Fakes) -> None:
    first = await client.cancel_order(6231458710004, idempotency_key="k1")
    again = await client.cancel_order(6231458710004, idempotency_key="k1")
    assert first.cancelled and first.cancel_reason == "customer"
    assert first.financial_status == "voided"
    assert again.cancelled_at == first.cancelled_at
    assert fakes.shopify.cancellations == [6231458710004]


async def test_cancel_whose_response_was_lost_is_not_an_error(
    client: ShopifyClient, fakes: Fakes
) -> None:
    fakes.shopify.lose_next_cancel_response = True
    order = await client.cancel_order(6231458710005, idempotency_key="k3")
    assert order.cancelled
    assert fakes.shopify.cancellations == [6231458710005]
    assert len(fakes.shopify.calls_to("POST", "/cancel.json")) == 2


async def test_cancelling_a_fulfilled_order_is_refused(client: ShopifyClient) -> None:
    with pytest.raises(ProviderError) as caught:
        await client.cancel_order(6231458710001, idempotency_key="k2")
    assert caught.value.status == 422
    assert "fulfilled" in caught.value.message


async def test_an_order_is_found_by_a_parcels_tracking_number(client: ShopifyClient) -> None:
    order = await client.find_by_tracking_number("sf1512345678901")
    assert order is not None and order.name == "#1003"
    assert await client.find_by_tracking_number("SF0000000000000") is None
