"""Fake Shopify Admin REST API (orders), serving the demo shop's `orders.json`."""

from __future__ import annotations

import copy
import json
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from fastapi import Request, Response
from fastapi.responses import JSONResponse

from clawdesk.sandbox.base import FakeProvider

ORDERS_FILE = Path(__file__).parents[1] / "data" / "shop" / "orders.json"
TOKEN = "shpat_test_clawdesk"
PREFIX = "/admin/api/{version}"


class FakeShopify(FakeProvider):
    name = "shopify"

    def __init__(self, token: str = TOKEN) -> None:
        super().__init__()
        self.token = token
        self.seed: list[dict[str, Any]] = json.loads(ORDERS_FILE.read_text())["orders"]
        self.orders: dict[int, dict[str, Any]] = {}
        self.reset_data()
        app = self.app
        app.get(PREFIX + "/orders.json")(self.list_orders)
        app.get(PREFIX + "/orders/{order_id}.json")(self.get_order)
        app.post(PREFIX + "/orders/{order_id}/cancel.json")(self.cancel_order)

    def reset_data(self) -> None:
        self.orders = {o["id"]: copy.deepcopy(o) for o in self.seed}
        self.cancellations: list[int] = []
        # True: the next cancel is carried out but answered 503 (a lost response).
        self.lose_next_cancel_response = False

    def error_body(self, status: int, message: str) -> Any:
        if status == 429:
            message = (
                "Exceeded 2 calls per second for api client. "
                "Reduce request rates to resume uninterrupted service."
            )
        return {"errors": message}

    def _denied(self, request: Request) -> Response | None:
        if request.headers.get("X-Shopify-Access-Token") != self.token:
            return self.error(
                401, "[API] Invalid API key or access token (unrecognized login or wrong password)"
            )
        return None

    async def list_orders(
        self,
        request: Request,
        version: str,
        name: str | None = None,
        email: str | None = None,
        status: str = "open",
        limit: int = 50,
    ) -> Response:
        if denied := self._denied(request):
            return denied
        orders = list(self.orders.values())
        if status == "open":
            orders = [o for o in orders if not o.get("cancelled_at") and not o.get("closed_at")]
        elif status == "cancelled":
            orders = [o for o in orders if o.get("cancelled_at")]
        elif status == "closed":
            orders = [o for o in orders if o.get("closed_at")]
        if name is not None:
            orders = [o for o in orders if o["name"] == name]
        if email is not None:
            orders = [o for o in orders if (o.get("email") or "").lower() == email.lower()]
        return JSONResponse({"orders": orders[: max(1, min(limit, 250))]})

    async def get_order(self, request: Request, version: str, order_id: int) -> Response:
        if denied := self._denied(request):
            return denied
        if order_id not in self.orders:
            return self.error(404, "Not Found")
        return JSONResponse({"order": self.orders[order_id]})

    async def cancel_order(self, request: Request, version: str, order_id: int) -> Response:
        if denied := self._denied(request):
            return denied
        order = self.orders.get(order_id)
        if order is None:
            return self.error(404, "Not Found")
        if order.get("cancelled_at"):
            return JSONResponse({"errors": {"base": ["Order has already been cancelled"]}}, 422)
        if order.get("fulfillment_status") in ("fulfilled", "partial"):
            message = "Cannot cancel an order that has been fulfilled or partially fulfilled"
            return JSONResponse({"errors": {"base": [message]}}, 422)
        body = await request.json() if await request.body() else {}
        order["cancelled_at"] = datetime.now(UTC).isoformat(timespec="seconds")
        order["cancel_reason"] = body.get("reason", "other")
        if order.get("financial_status") in ("pending", "authorized"):
            order["financial_status"] = "voided"
        self.cancellations.append(order_id)
        if self.lose_next_cancel_response:
            self.lose_next_cancel_response = False
            return self.error(503, "Service Unavailable")
        return JSONResponse({"order": order})
