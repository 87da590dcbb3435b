"""Zendesk Support tickets: create (once per conversation) and update.

Basic auth as `{email}/token:{api_token}`. Errors are `{"error": "...", "description"}`
(422 adds `details`); 429 comes with `Retry-After` seconds.

Idempotency of `create_ticket`, two layers:
1. `external_id` is our conversation id. Before creating we list the tickets with that
   external id (`GET /api/v2/tickets.json?external_id=`, a direct lookup, not the
   eventually-consistent search index) and return an open one if there is one. A
   conversation whose earlier ticket is closed gets a new ticket: closed tickets
   cannot be updated in Zendesk.
2. Given an `idempotency_key` (the skill runner always passes one), the create carries
   it as the `Idempotency-Key` header (Zendesk keeps keys ~2 hours), which covers the
   window where two attempts both miss in step 1.
"""

from __future__ import annotations

import base64
from datetime import datetime
from typing import Literal

import httpx
from pydantic import BaseModel, ConfigDict, Field

from clawdesk.integrations.http import (
    ProviderClient,
    RetryPolicy,
    flatten_message,
    json_or_none,
    make_client,
)

TicketStatus = Literal["new", "open", "pending", "hold", "solved", "closed"]


class Requester(BaseModel):
    """Who asked: Zendesk finds or creates the end user by e-mail."""

    model_config = ConfigDict(frozen=True)

    name: str
    email: str | None = None


class Ticket(BaseModel):
    """A Zendesk ticket (the fields we use)."""

    model_config = ConfigDict(extra="ignore", frozen=True)

    id: int
    subject: str | None = None
    status: str
    external_id: str | None = None
    tags: list[str] = Field(default_factory=list)
    requester_id: int | None = None
    url: str | None = None
    created_at: datetime | None = None
    updated_at: datetime | None = None


def basic_auth(email: str, api_token: str) -> str:
    """The Authorization header value for API-token auth."""
    raw = f"{email}/token:{api_token}".encode()
    return "Basic " + base64.b64encode(raw).decode()


class ZendeskClient(ProviderClient):
    """Tickets of one Zendesk account (`https://{subdomain}.zendesk.com`)."""

    provider = "zendesk"

    def __init__(
        self,
        subdomain_url: str,
        email: str,
        api_token: str,
        *,
        timeout: float = 10.0,
        retry: RetryPolicy | None = None,
        http: httpx.AsyncClient | None = None,
    ) -> None:
        headers = {"Authorization": basic_auth(email, api_token)}
        super().__init__(http or make_client(subdomain_url, headers, timeout), retry)

    def error_details(self, response: httpx.Response) -> tuple[str | None, str]:
        body = json_or_none(response)
        if isinstance(body, dict):
            error = body.get("error")
            code = error if isinstance(error, str) else None
            message = body.get("description") or error or ""
            if body.get("details"):
                message = f"{flatten_message(message)}: {flatten_message(body['details'])}"
            return code, flatten_message(message)
        return None, response.text.strip() or response.reason_phrase

    async def get_ticket(self, ticket_id: int) -> Ticket:
        """A ticket by id (raises `NotFound`)."""
        response = await self.request("GET", f"/api/v2/tickets/{ticket_id}.json")
        return Ticket.model_validate(response.json()["ticket"])

    async def find_by_external_id(self, external_id: str) -> list[Ticket]:
        """The tickets carrying this external id, oldest first."""
        response = await self.request(
            "GET", "/api/v2/tickets.json", params={"external_id": external_id}
        )
        return [Ticket.model_validate(t) for t in response.json().get("tickets") or []]

    async def create_ticket(
        self,
        subject: str,
        comment: str,
        requester: Requester,
        tags: list[str],
        external_id: str,
        *,
        idempotency_key: str | None = None,
    ) -> Ticket:
        """The open ticket of this conversation, created if it has none."""
        for ticket in reversed(await self.find_by_external_id(external_id)):
            if ticket.status != "closed":
                return ticket
        body = {
            "ticket": {
                "subject": subject,
                "comment": {"body": comment, "public": False},
                "requester": requester.model_dump(exclude_none=True),
                "tags": tags,
                "external_id": external_id,
            }
        }
        headers = {"Idempotency-Key": idempotency_key} if idempotency_key else {}
        response = await self.request("POST", "/api/v2/tickets.json", json=body, headers=headers)
        return Ticket.model_validate(response.json()["ticket"])

    async def update_ticket(
        self,
        ticket_id: int,
        comment: str | None = None,
        status: TicketStatus | None = None,
        *,
        public: bool = False,
    ) -> Ticket:
        """Add a comment and/or change the status of a ticket."""
        ticket: dict[str, object] = {}
        if comment:
            ticket["comment"] = {"body": comment, "public": public}
        if status:
            ticket["status"] = status
        response = await self.request(
            "PUT", f"/api/v2/tickets/{ticket_id}.json", json={"ticket": ticket}
        )
        return Ticket.model_validate(response.json()["ticket"])
