"""Fake Stripe API: PaymentIntent search and refunds, with Idempotency-Key semantics.

As Stripe does: the first response for a key is saved once the endpoint starts
executing and replayed for the same key (`Idempotent-Replayed: true`); the same key
with other parameters is a 400 `idempotency_error`; parameter validation failures are
not saved.
"""

from __future__ import annotations

import itertools
import re
import threading
import time
from decimal import Decimal
from typing import Any
from urllib.parse import parse_qsl

from fastapi import Request, Response
from fastapi.responses import JSONResponse

from clawdesk.sandbox.base import FakeProvider
from clawdesk.sandbox.shopify import FakeShopify

SECRET_KEY = "sk_test_clawdesk"
REASONS = ("duplicate", "fraudulent", "requested_by_customer")
_QUERY = re.compile(r"metadata\['(\w+)'\]:'([^']*)'")


def _cents(amount: str | None) -> int:
    return int(Decimal(amount or "0") * 100)


def _stripe_error(
    message: str, type_: str, code: str | None = None, param: str | None = None
) -> Any:
    error: dict[str, Any] = {"message": message, "type": type_}
    if code:
        error["code"] = code
    if param:
        error["param"] = param
    return {"error": error}


class FakeStripe(FakeProvider):
    name = "stripe"

    def __init__(self, secret_key: str = SECRET_KEY) -> None:
        super().__init__()
        self.secret_key = secret_key
        self.seed = FakeShopify().seed
        self._refund_lock = threading.Lock()
        self.reset_data()
        self.app.get("/v1/payment_intents/search")(self.search_payment_intents)
        self.app.post("/v1/refunds")(self.create_refund)
        self.app.get("/v1/refunds/{refund_id}")(self.get_refund)

    def reset_data(self) -> None:
        self.payment_intents: dict[str, dict[str, Any]] = {}
        self.refunded: dict[str, int] = {}
        for order in self.seed:
            if order.get("financial_status") not in ("paid", "partially_refunded", "refunded"):
                continue
            pi = f"pi_{order['id']}"
            self.payment_intents[pi] = {
                "id": pi,
                "object": "payment_intent",
                "amount": _cents(order["total_price"]),
                "amount_received": _cents(order["total_price"]),
                "currency": order["currency"].lower(),
                "status": "succeeded",
                "metadata": {"order_name": order["name"], "order_id": str(order["id"])},
            }
            self.refunded[pi] = _cents(order.get("total_refunded"))
        self.refunds: dict[str, dict[str, Any]] = {}
        self.idempotency: dict[str, tuple[tuple[tuple[str, str], ...], int, Any]] = {}
        self._ids = itertools.count(1)

    def error_body(self, status: int, message: str) -> Any:
        if status == 429:
            return _stripe_error(
                "Request rate limit exceeded.", "invalid_request_error", "rate_limit"
            )
        return _stripe_error(message, "api_error")

    def _denied(self, request: Request) -> Response | None:
        if request.headers.get("Authorization") != f"Bearer {self.secret_key}":
            key = (request.headers.get("Authorization") or "").removeprefix("Bearer ")
            message = f"Invalid API Key provided: {key[:8]}****{key[-4:]}"
            return JSONResponse(_stripe_error(message, "invalid_request_error"), 401)
        return None

    async def search_payment_intents(self, request: Request, query: str = "") -> Response:
        if denied := self._denied(request):
            return denied
        match = _QUERY.fullmatch(query.strip())
        if match is None:
            error = _stripe_error("Invalid search query", "invalid_request_error", param="query")
            return JSONResponse(error, 400)
        field, value = match.groups()
        found = [p for p in self.payment_intents.values() if p["metadata"].get(field) == value]
        body = {
            "object": "search_result",
            "data": found,
            "has_more": False,
            "url": request.url.path,
        }
        return JSONResponse(body)

    async def get_refund(self, request: Request, refund_id: str) -> Response:
        if denied := self._denied(request):
            return denied
        if refund_id not in self.refunds:
            message = f"No such refund: '{refund_id}'"
            error = _stripe_error(message, "invalid_request_error", "resource_missing", "id")
            return JSONResponse(error, 404)
        return JSONResponse(self.refunds[refund_id])

    async def create_refund(self, request: Request) -> Response:
        if denied := self._denied(request):
            return denied
        params = tuple(sorted(parse_qsl((await request.body()).decode())))
        form = dict(params)
        if invalid := self._invalid(form):
            return invalid  # validation failures are not saved under the key
        key = request.headers.get("Idempotency-Key")
        with self._refund_lock:
            if key and key in self.idempotency:
                saved_params, status, body = self.idempotency[key]
                if saved_params != params:
                    message = (
                        "Keys for idempotent requests can only be used with the same "
                        f"parameters they were first used with. Try using a key other than "
                        f"'{key}' if you meant to execute a different request."
                    )
                    return JSONResponse(_stripe_error(message, "idempotency_error"), 400)
                return JSONResponse(body, status, headers={"Idempotent-Replayed": "true"})
            status, body = self._refund(form)
            if key:
                self.idempotency[key] = (params, status, body)
        return JSONResponse(body, status)

    def _invalid(self, form: dict[str, str]) -> Response | None:
        if "payment_intent" not in form and "charge" not in form:
            message = (
                "One of the following params should be provided for this request: "
                "charge or payment_intent."
            )
            return JSONResponse(_stripe_error(message, "invalid_request_error"), 400)
        if form.get("reason") not in (None, *REASONS):
            message = (
                "Invalid reason: must be one of duplicate, fraudulent, or requested_by_customer"
            )
            error = _stripe_error(message, "invalid_request_error", param="reason")
            return JSONResponse(error, 400)
        if "amount" in form and not form["amount"].isdigit():
            error = _stripe_error(
                "Invalid integer: " + form["amount"],
                "invalid_request_error",
                "parameter_invalid_integer",
                "amount",
            )
            return JSONResponse(error, 400)
        return None

    def _refund(self, form: dict[str, str]) -> tuple[int, Any]:
        pi_id = form.get("payment_intent", "")
        pi = self.payment_intents.get(pi_id)
        if pi is None:
            message = f"No such payment_intent: '{pi_id}'"
            return 400, _stripe_error(
                message, "invalid_request_error", "resource_missing", "payment_intent"
            )
        remaining = pi["amount_received"] - self.refunded[pi_id]
        if remaining <= 0:
            message = f"Charge for {pi_id} has already been refunded."
            return 400, _stripe_error(message, "invalid_request_error", "charge_already_refunded")
        amount = int(form.get("amount", remaining))
        if amount > remaining:
            message = (
                f"Refund amount ({amount}) is greater than unrefunded amount on "
                f"charge ({remaining})"
            )
            return 400, _stripe_error(
                message, "invalid_request_error", "amount_too_large", "amount"
            )
        self.refunded[pi_id] += amount
        refund = {
            "id": f"re_{next(self._ids):06d}",
            "object": "refund",
            "amount": amount,
            "currency": pi["currency"],
            "payment_intent": pi_id,
            "charge": pi_id.replace("pi_", "ch_"),
            "reason": form.get("reason"),
            "status": "succeeded",
            "created": int(time.time()),
            "metadata": {k[9:-1]: v for k, v in form.items() if k.startswith("metadata[")},
        }
        self.refunds[refund["id"]] = refund
        return 200, refund
