"""The packaged demo shop: ClawShop's orders, in the Shopify Admin API order shape.

`make up` runs without a Shopify store, yet the demo should answer "where is order
#1002?". `DemoShop` serves the orders in `clawdesk/data/shop/orders.json` through the
same read interface as `ShopifyClient` (`get_order_by_name`, `list_orders`), so the
order skills run unchanged against either. It is read-only on purpose: cancelling and
refunding need the real providers (Shopify, Stripe), and without them those skills
answer "unavailable" instead of pretending to change a file.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

from clawdesk.integrations.shopify import Order
from clawdesk.nlu.entities import order_number


@dataclass(frozen=True)
class DemoShop:
    """The demo orders by number (read-only)."""

    orders: dict[str, Order]

    @classmethod
    def from_file(cls, path: Path) -> DemoShop:
        """Load `{"orders": [...]}` (Shopify's order JSON)."""
        data = json.loads(path.read_text())
        orders = (Order.model_validate(o) for o in data["orders"])
        return cls({o.name.lstrip("#"): o for o in orders})

    def find(self, reference: str) -> Order | None:
        """The order a reference points to, or None."""
        number = order_number(reference)
        return self.orders.get(number) if number else None

    async def get_order_by_name(self, name: str) -> Order | None:
        """As `ShopifyClient.get_order_by_name`: the order named `#1001`, or None."""
        return self.find(name)

    async def find_by_tracking_number(self, tracking_number: str) -> Order | None:
        """The order one of whose parcels has this tracking number, or None."""
        wanted = tracking_number.strip().upper()
        return next(
            (
                o
                for o in self.orders.values()
                if any((f.tracking_number or "").upper() == wanted for f in o.fulfillments)
            ),
            None,
        )

    async def list_orders(self, email: str, limit: int = 50) -> list[Order]:
        """As `ShopifyClient.list_orders`: the customer's orders, newest first."""
        wanted = email.strip().lower()
        mine = [o for o in self.orders.values() if (o.email or "").lower() == wanted]
        return sorted(mine, key=lambda o: o.created_at, reverse=True)[:limit]
