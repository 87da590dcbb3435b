"""Shopify Admin REST API: orders (read, list by e-mail, cancel).

Errors come back as `{"errors": "..."}` or `{"errors": {"field": ["..."]}}`; auth is
the `X-Shopify-Access-Token` header. The REST cancel endpoint takes no idempotency
key, so `cancel_order` reads the order first and treats "already cancelled" as done;
together with the skill runner's idempotency table that makes a replay harmless.
"""

from __future__ import annotations

import logging
from datetime import datetime
from decimal import Decimal
from typing import Literal

import httpx
from pydantic import BaseModel, ConfigDict, Field

from clawdesk.integrations.http import (
    ProviderClient,
    ProviderError,
    RetryPolicy,
    flatten_message,
    json_or_none,
    make_client,
)

log = logging.getLogger(__name__)

API_VERSION = "2024-07"
CancelReason = Literal["customer", "inventory", "fraud", "declined", "other"]


class _Model(BaseModel):
    # Shopify adds fields often; keep what we use, ignore the rest.
    model_config = ConfigDict(extra="ignore", frozen=True)


class LineItem(_Model):
    title: str
    quantity: int
    price: Decimal


class Fulfillment(_Model):
    tracking_company: str | None = None
    tracking_number: str | None = None
    status: str | None = None
    shipment_status: str | None = None


class Order(_Model):
    """The parts of a Shopify order a customer-service reply may use."""

    id: int
    name: str
    email: str | None = None
    created_at: datetime
    cancelled_at: datetime | None = None
    cancel_reason: str | None = None
    financial_status: str | None = None
    fulfillment_status: str | None = None
    currency: str
    total_price: Decimal
    total_refunded: Decimal = Decimal("0")
    line_items: list[LineItem] = Field(default_factory=list)
    fulfillments: list[Fulfillment] = Field(default_factory=list)

    @property
    def cancelled(self) -> bool:
        return self.cancelled_at is not None

    @property
    def last_fulfillment(self) -> Fulfillment | None:
        return self.fulfillments[-1] if self.fulfillments else None


RECENT_ORDERS = 250  # the Admin API's largest page


def order_name(reference: str) -> str:
    """Shopify's order name for a reference: `1001`, `#1001` → `#1001`."""
    reference = reference.strip()
    return reference if reference.startswith("#") else f"#{reference}"


class ShopifyClient(ProviderClient):
    """Orders of one shop."""

    provider = "shopify"

    def __init__(
        self,
        shop_url: str,
        access_token: str,
        *,
        api_version: str = API_VERSION,
        timeout: float = 10.0,
        retry: RetryPolicy | None = None,
        http: httpx.AsyncClient | None = None,
    ) -> None:
        headers = {"X-Shopify-Access-Token": access_token}
        super().__init__(http or make_client(shop_url, headers, timeout), retry)
        self.prefix = f"/admin/api/{api_version}"

    def error_details(self, response: httpx.Response) -> tuple[str | None, str]:
        body = json_or_none(response)
        if isinstance(body, dict) and ("errors" in body or "error" in body):
            return None, flatten_message(body.get("errors", body.get("error")))
        return None, response.reason_phrase

    async def get_order_by_name(self, name: str) -> Order | None:
        """The order named `#1001` (any status), or None."""
        wanted = order_name(name)
        response = await self.request(
            "GET", f"{self.prefix}/orders.json", params={"name": wanted, "status": "any"}
        )
        # The name filter is a prefix match on some shops: keep only the exact one.
        for raw in response.json().get("orders", []):
            if raw.get("name") == wanted:
                return Order.model_validate(raw)
        return None

    async def get_order(self, order_id: int) -> Order:
        """An order by id (raises `NotFound`)."""
        response = await self.request("GET", f"{self.prefix}/orders/{order_id}.json")
        return Order.model_validate(response.json()["order"])

    async def list_orders(self, email: str, limit: int = 50) -> list[Order]:
        """The customer's orders, newest first, any status."""
        response = await self.request(
            "GET",
            f"{self.prefix}/orders.json",
            params={"email": email, "status": "any", "limit": limit},
        )
        orders = [Order.model_validate(o) for o in response.json().get("orders", [])]
        return sorted(orders, key=lambda o: o.created_at, reverse=True)

    async def find_by_tracking_number(self, tracking_number: str) -> Order | None:
        """The recent order one of whose parcels has this tracking number, or None.

        The Admin API cannot search orders by tracking number, so this reads the newest
        page of orders (`RECENT_ORDERS` of them) and matches their fulfilments:
        a parcel a customer asks about was shipped lately."""
        response = await self.request(
            "GET",
            f"{self.prefix}/orders.json",
            params={"status": "any", "limit": RECENT_ORDERS},
        )
        wanted = tracking_number.strip().upper()
        for raw in response.json().get("orders", []):
            order = Order.model_validate(raw)
            if any((f.tracking_number or "").upper() == wanted for f in order.fulfillments):
                return order
        return None

    async def cancel_order(
        self, order_id: int, idempotency_key: str, reason: CancelReason = "customer"
    ) -> Order:
        """Cancel an order; an order that is already cancelled is returned as it is."""
        current = await self.get_order(order_id)
        if current.cancelled:
            log.info("order already cancelled", extra={"order_id": order_id})
            return current
        log.info(
            "cancelling order", extra={"order_id": order_id, "idempotency_key": idempotency_key}
        )
        try:
            response = await self.request(
                "POST",
                f"{self.prefix}/orders/{order_id}/cancel.json",
                json={"reason": reason, "email": True},
            )
        except ProviderError as exc:
            # A retried POST whose first attempt did cancel (its response was lost)
            # is refused as "already cancelled": that is success.
            if exc.status != 422:
                raise
            after = await self.get_order(order_id)
            if not after.cancelled:
                raise
            return after
        return Order.model_validate(response.json()["order"])
