"""Where the order and tracking skills read from, and the cache in front of it.

`OrderSource` is what `ShopifyClient` and the packaged `DemoShop` both offer;
`TrackingSource` is what `DhlTrackingClient` offers. The cached wrappers put the
layered cache (L1 memory + L2 Redis) in front of either, with keys that carry the
tenant, the source and the order or tracking number, and a short TTL: an order's
status changes, so a read may be at most that old. Misses ("no such order") are not
cached, so a customer who just placed an order is not told it does not exist.
"""

from __future__ import annotations

from typing import Protocol

from clawdesk.integrations.dhl import Shipment
from clawdesk.integrations.shopify import Order
from clawdesk.nlu.entities import order_number
from clawdesk.storage.cache import LayeredCache


class OrderSource(Protocol):
    """Reads orders (Shopify Admin API semantics)."""

    async def get_order_by_name(self, name: str) -> Order | None: ...

    async def list_orders(self, email: str, limit: int = 50) -> list[Order]: ...


class TrackingSource(Protocol):
    """Reads a carrier's tracking (raises `NotFound` for an unknown number)."""

    async def track(self, tracking_number: str, language: str = "en") -> Shipment: ...


class CachedOrders:
    """An `OrderSource` read through the layered cache, per tenant and source."""

    def __init__(self, source: OrderSource, cache: LayeredCache, tenant: str, name: str) -> None:
        self.source = source
        self.cache = cache
        self.tenant = tenant
        self.name = name  # "shopify", "demo": the same number means another order in each

    def key(self, reference: str) -> str:
        """The cache key of one order: tenant, source and order number."""
        return self.cache.key("order", self.tenant, self.name, order_number(reference) or "")

    async def get_order_by_name(self, name: str) -> Order | None:
        """The order, from the cache when it was read in the last TTL seconds."""
        if order_number(name) is None:
            return await self.source.get_order_by_name(name)
        key = self.key(name)
        cached = await self.cache.get(key)
        if cached is not None:
            return Order.model_validate(cached)
        return await self.refresh(name)

    async def refresh(self, name: str) -> Order | None:
        """Read the order from the source and cache it (after a change, e.g. a refund)."""
        order = await self.source.get_order_by_name(name)
        if order is not None:
            await self.cache.set(self.key(name), order.model_dump(mode="json"))
        return order

    async def find_by_tracking_number(self, tracking_number: str) -> Order | None:
        """The order that shipped this parcel, where the source can tell (not cached)."""
        lookup = getattr(self.source, "find_by_tracking_number", None)
        return None if lookup is None else await lookup(tracking_number)

    async def list_orders(self, email: str, limit: int = 50) -> list[Order]:
        """Not cached: a list is asked for rarely, and must show a brand-new order."""
        return await self.source.list_orders(email, limit)


class CachedTracking:
    """A `TrackingSource` read through the layered cache."""

    def __init__(self, source: TrackingSource, cache: LayeredCache, tenant: str, name: str) -> None:
        self.source = source
        self.cache = cache
        self.tenant = tenant
        self.name = name

    async def track(self, tracking_number: str, language: str = "en") -> Shipment:
        """The shipment, from the cache when it was read in the last TTL seconds."""
        key = self.cache.key("tracking", self.tenant, self.name, tracking_number, language)
        cached = await self.cache.get(key)
        if cached is not None:
            return Shipment.model_validate(cached)
        shipment = await self.source.track(tracking_number, language=language)
        await self.cache.set(key, shipment.model_dump(mode="json"))
        return shipment
