"""DHL Shipment Tracking – Unified API: `GET /track/shipments?trackingNumber=`.

Auth is the `DHL-API-Key` header; errors are RFC 7807 problem documents
(`{"title", "status", "detail"}`), 404 when no shipment has the number.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

import httpx
from pydantic import BaseModel, ConfigDict, Field

from clawdesk.integrations.http import (
    NotFound,
    ProviderClient,
    RetryPolicy,
    json_or_none,
    make_client,
)

BASE_URL = "https://api-eu.dhl.com"


class TrackingEvent(BaseModel):
    """One checkpoint: when, what (DHL's status code and text), where."""

    model_config = ConfigDict(frozen=True)

    timestamp: datetime | None = None
    status_code: str = "unknown"  # pre-transit | transit | delivered | failure | unknown
    description: str = ""
    location: str | None = None


class Shipment(BaseModel):
    """A tracked shipment: its current status and its checkpoints, newest first."""

    model_config = ConfigDict(frozen=True)

    tracking_number: str
    service: str | None = None
    status: TrackingEvent
    estimated_delivery: datetime | None = None
    events: list[TrackingEvent] = Field(default_factory=list)

    @property
    def delivered(self) -> bool:
        return self.status.status_code == "delivered"


def _event(raw: dict[str, Any]) -> TrackingEvent:
    address = (raw.get("location") or {}).get("address") or {}
    return TrackingEvent(
        timestamp=raw.get("timestamp"),
        status_code=raw.get("statusCode") or "unknown",
        description=raw.get("description") or raw.get("status") or "",
        location=address.get("addressLocality"),
    )


def parse_shipment(raw: dict[str, Any]) -> Shipment:
    """Our model of one element of the API's `shipments` array."""
    events = sorted(
        (_event(e) for e in raw.get("events") or []),
        key=lambda e: e.timestamp.timestamp() if e.timestamp else 0.0,
        reverse=True,
    )
    return Shipment(
        tracking_number=str(raw["id"]),
        service=raw.get("service"),
        status=_event(raw.get("status") or {}),
        estimated_delivery=raw.get("estimatedTimeOfDelivery"),
        events=events,
    )


class DhlTrackingClient(ProviderClient):
    """Tracking of DHL shipments (every DHL division behind one endpoint)."""

    provider = "dhl"

    def __init__(
        self,
        api_key: str,
        *,
        base_url: str = BASE_URL,
        timeout: float = 10.0,
        retry: RetryPolicy | None = None,
        http: httpx.AsyncClient | None = None,
    ) -> None:
        super().__init__(http or make_client(base_url, {"DHL-API-Key": api_key}, timeout), retry)

    def error_details(self, response: httpx.Response) -> tuple[str | None, str]:
        body = json_or_none(response)
        if isinstance(body, dict):
            return body.get("title"), str(body.get("detail") or body.get("title") or "")
        return None, response.reason_phrase

    async def track(self, tracking_number: str, language: str = "en") -> Shipment:
        """The shipment with this number (raises `NotFound`)."""
        response = await self.request(
            "GET",
            "/track/shipments",
            params={"trackingNumber": tracking_number, "language": language},
        )
        shipments = response.json().get("shipments") or []
        if not shipments:
            raise NotFound(404, "No result found", tracking_number, self.provider)
        return parse_shipment(shipments[0])
