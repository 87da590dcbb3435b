"""Stripe: find the PaymentIntent of an order and refund it.

Bearer auth with the secret key, form-encoded bodies, and an `Idempotency-Key` header
on every refund: Stripe stores the first response for a key and replays it, so a
retried or replayed refund never pays out twice. Errors are
`{"error": {"type", "code", "message", "param"}}`; a reference to a missing object is
a 400 with code `resource_missing`, which we raise as `NotFound`.
"""

from __future__ import annotations

from typing import Literal

import httpx
from pydantic import BaseModel, ConfigDict, Field

from clawdesk.integrations.http import (
    NotFound,
    ProviderClient,
    ProviderError,
    RetryPolicy,
    json_or_none,
    make_client,
)

BASE_URL = "https://api.stripe.com"
RefundReason = Literal["duplicate", "fraudulent", "requested_by_customer"]


class Refund(BaseModel):
    """Stripe's refund object (the fields we use)."""

    model_config = ConfigDict(extra="ignore", frozen=True)

    id: str
    amount: int = Field(description="minor units (cents)")
    currency: str
    payment_intent: str | None = None
    reason: str | None = None
    status: str  # pending | requires_action | succeeded | failed | canceled
    created: int
    metadata: dict[str, str] = Field(default_factory=dict)


class PaymentIntent(BaseModel):
    """Stripe's PaymentIntent object (the fields we use)."""

    model_config = ConfigDict(extra="ignore", frozen=True)

    id: str
    amount: int
    amount_received: int = 0
    currency: str
    status: str
    metadata: dict[str, str] = Field(default_factory=dict)


class StripeClient(ProviderClient):
    """Refunds through Stripe's v1 API."""

    provider = "stripe"

    def __init__(
        self,
        secret_key: str,
        *,
        base_url: str = BASE_URL,
        timeout: float = 10.0,
        retry: RetryPolicy | None = None,
        http: httpx.AsyncClient | None = None,
    ) -> None:
        headers = {"Authorization": f"Bearer {secret_key}"}
        super().__init__(http or make_client(base_url, headers, timeout), retry)

    def error_details(self, response: httpx.Response) -> tuple[str | None, str]:
        body = json_or_none(response)
        error = body.get("error") if isinstance(body, dict) else None
        if isinstance(error, dict):
            return error.get("code") or error.get("type"), str(error.get("message") or "")
        return None, response.reason_phrase

    def error_for(self, response: httpx.Response) -> ProviderError:
        error = super().error_for(response)
        if error.code == "resource_missing" and not isinstance(error, NotFound):
            return NotFound(error.status, error.code, error.message, self.provider)
        return error

    async def find_payment_intent(self, order_name: str) -> PaymentIntent | None:
        """The PaymentIntent whose metadata names this order (Stripe's search API)."""
        # Single quotes delimit the value in Stripe's query language.
        query = f"metadata['order_name']:'{order_name.replace(chr(39), '')}'"
        response = await self.request(
            "GET", "/v1/payment_intents/search", params={"query": query, "limit": 1}
        )
        found = response.json().get("data") or []
        return PaymentIntent.model_validate(found[0]) if found else None

    async def get_refund(self, refund_id: str) -> Refund:
        """A refund by id (raises `NotFound`)."""
        response = await self.request("GET", f"/v1/refunds/{refund_id}")
        return Refund.model_validate(response.json())

    async def refund(
        self,
        payment_intent: str,
        amount_minor: int | None,
        reason: RefundReason | None,
        idempotency_key: str,
        metadata: dict[str, str] | None = None,
    ) -> Refund:
        """Refund `amount_minor` (None: the rest) of a PaymentIntent, once per key."""
        form: dict[str, str] = {"payment_intent": payment_intent}
        if amount_minor is not None:
            form["amount"] = str(amount_minor)
        if reason is not None:
            form["reason"] = reason
        for key, value in (metadata or {}).items():
            form[f"metadata[{key}]"] = value
        response = await self.request(
            "POST", "/v1/refunds", data=form, headers={"Idempotency-Key": idempotency_key}
        )
        return Refund.model_validate(response.json())
