"""Fake DHL Shipment Tracking – Unified API. Knows the demo orders' DHL parcels."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

from fastapi import Request, Response
from fastapi.responses import JSONResponse

from clawdesk.sandbox.base import FakeProvider
from clawdesk.sandbox.shopify import FakeShopify

API_KEY = "dhl-test-key"
# Shopify's shipment_status → DHL's statusCode.
STATUS = {
    "delivered": "delivered",
    "in_transit": "transit",
    "out_for_delivery": "transit",
    "attempted_delivery": "failure",
    "label_printed": "pre-transit",
}


def _event(at: datetime, code: str, text: str, city: str) -> dict[str, Any]:
    return {
        "timestamp": at.isoformat(),
        "location": {"address": {"addressLocality": city}},
        "statusCode": code,
        "status": text.upper(),
        "description": text,
    }


def shipment_for(order: dict[str, Any], fulfillment: dict[str, Any]) -> dict[str, Any]:
    """A tracking record in DHL's shape for a demo order's fulfilment."""
    created = datetime.fromisoformat(order["created_at"])
    city = order.get("shipping_address", {}).get("city", "")
    code = STATUS.get(fulfillment.get("shipment_status") or "", "transit")
    events = [
        _event(
            created + timedelta(hours=6), "pre-transit", "Shipment information received", "Leipzig"
        ),
        _event(created + timedelta(days=1), "transit", "Shipment picked up", "Leipzig"),
        _event(created + timedelta(days=2), "transit", "Arrived at destination hub", city),
    ]
    if code == "delivered":
        events.append(_event(created + timedelta(days=3), "delivered", "Delivered", city))
    elif fulfillment.get("shipment_status") == "out_for_delivery":
        events.append(_event(created + timedelta(days=3), "transit", "Out for delivery", city))
    latest = events[-1]
    return {
        "id": fulfillment["tracking_number"],
        "service": "express",
        "origin": {"address": {"addressLocality": "Leipzig", "countryCode": "DE"}},
        "destination": {"address": {"addressLocality": city}},
        "status": latest,
        "estimatedTimeOfDelivery": (created + timedelta(days=3)).isoformat(),
        "events": list(reversed(events)),  # DHL lists the newest first
    }


class FakeDhl(FakeProvider):
    name = "dhl"

    def __init__(self, api_key: str = API_KEY) -> None:
        super().__init__()
        self.api_key = api_key
        self.shipments: dict[str, dict[str, Any]] = {}
        for order in FakeShopify().seed:
            for f in order.get("fulfillments") or []:
                if (f.get("tracking_company") or "").startswith("DHL"):
                    self.shipments[f["tracking_number"]] = shipment_for(order, f)
        self.app.get("/track/shipments")(self.track)

    def error_body(self, status: int, message: str) -> Any:
        titles = {401: "Unauthorized", 404: "No result found", 429: "Too many requests"}
        details = {429: "Too many requests within defined time period."}
        return {
            "title": titles.get(status, message),
            "status": status,
            "detail": details.get(status, message),
        }

    def error(self, status: int, message: str, headers: dict[str, str] | None = None) -> Response:
        return JSONResponse(
            self.error_body(status, message),
            status,
            headers=headers,
            media_type="application/problem+json",
        )

    async def track(self, request: Request, trackingNumber: str | None = None) -> Response:
        if request.headers.get("DHL-API-Key") != self.api_key:
            return self.error(401, "Unauthorized for given resource.")
        if not trackingNumber:
            return self.error(400, "trackingNumber is required")
        shipment = self.shipments.get(trackingNumber)
        if shipment is None:
            return self.error(404, "No shipment with given tracking number found.")
        return JSONResponse({"shipments": [shipment], "possibleAdditionalShipmentsUrl": []})
