"""DhlTrackingClient against the fake Shipment Tracking – Unified API."""

from __future__ import annotations

from clawdesk.integrations.dhl import DhlTrackingClient
from tests.fakes import dhl
from tests.fakes.fixtures import Fakes
from tests.integrations.cases import FAST


async def test_track_returns_status_and_events_newest_first(fakes: Fakes) -> None:
    async with DhlTrackingClient(dhl.API_KEY, base_url=fakes.dhl.base_url, retry=FAST) as c:
        shipment = await c.track("4817263950")
    assert shipment.tracking_number == "4817263950"
    assert shipment.status.status_code == "transit"
    assert not shipment.delivered
    assert shipment.status.location == "Sydney"
    stamps = [e.timestamp.timestamp() for e in shipment.events if e.timestamp]
    # received, picked up, at the hub, out for delivery (the demo order's shop status)
    assert len(stamps) == 4 and stamps == sorted(stamps, reverse=True)
    assert shipment.events[0].description == "Out for delivery"
    assert shipment.estimated_delivery is not None
    call = fakes.dhl.calls[-1]
    assert call.headers["dhl-api-key"] == dhl.API_KEY
    assert "trackingNumber=4817263950" in call.query


async def test_delivered_shipment(fakes: Fakes) -> None:
    async with DhlTrackingClient(dhl.API_KEY, base_url=fakes.dhl.base_url, retry=FAST) as c:
        shipment = await c.track("7734019265")
    assert shipment.delivered
    assert shipment.events[0].description == "Delivered"
