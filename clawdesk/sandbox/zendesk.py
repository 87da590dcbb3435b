"""Fake Zendesk Support tickets API (list by external id, create, show, update)."""

from __future__ import annotations

import base64
import hashlib
import itertools
import json
import threading
from datetime import UTC, datetime
from typing import Any

from fastapi import Request, Response
from fastapi.responses import JSONResponse

from clawdesk.sandbox.base import FakeProvider

EMAIL = "agent@clawshop.example"
API_TOKEN = "zd-test-token"
STATUSES = ("new", "open", "pending", "hold", "solved", "closed")


def _now() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds").replace("+00:00", "Z")


class FakeZendesk(FakeProvider):
    name = "zendesk"

    def __init__(self, email: str = EMAIL, api_token: str = API_TOKEN) -> None:
        super().__init__()
        raw = f"{email}/token:{api_token}".encode()
        self.authorization = "Basic " + base64.b64encode(raw).decode()
        self._create_lock = threading.Lock()
        self.reset_data()
        app = self.app
        app.get("/api/v2/tickets.json")(self.list_tickets)
        app.post("/api/v2/tickets.json")(self.create_ticket)
        app.get("/api/v2/tickets/{ticket_id}.json")(self.show_ticket)
        app.put("/api/v2/tickets/{ticket_id}.json")(self.update_ticket)

    def reset_data(self) -> None:
        self._ids = itertools.count(1)
        self.tickets: dict[int, dict[str, Any]] = {}
        self.comments: dict[int, list[dict[str, Any]]] = {}
        self.users: dict[str, int] = {}
        self.idempotency: dict[str, tuple[str, dict[str, Any]]] = {}

    def error_body(self, status: int, message: str) -> Any:
        if status == 429:
            return {
                "error": "APIRateLimitExceeded",
                "description": "Number of allowed API requests per minute exceeded",
            }
        return {"error": message}

    def _denied(self, request: Request) -> Response | None:
        if request.headers.get("Authorization") != self.authorization:
            return JSONResponse({"error": "Couldn't authenticate you"}, 401)
        return None

    def _not_found(self) -> Response:
        return JSONResponse({"error": "RecordNotFound", "description": "Not found"}, 404)

    @staticmethod
    def _invalid(field: str, description: str) -> Response:
        body = {
            "error": "RecordInvalid",
            "description": "Record validation errors",
            "details": {field: [{"description": description}]},
        }
        return JSONResponse(body, 422)

    def _url(self, request: Request, ticket_id: int) -> str:
        return f"{request.base_url}api/v2/tickets/{ticket_id}.json"

    async def list_tickets(self, request: Request, external_id: str | None = None) -> Response:
        if denied := self._denied(request):
            return denied
        tickets = [
            t
            for t in self.tickets.values()
            if external_id is None or t["external_id"] == external_id
        ]
        return JSONResponse(
            {"tickets": tickets, "next_page": None, "previous_page": None, "count": len(tickets)}
        )

    async def show_ticket(self, request: Request, ticket_id: int) -> Response:
        if denied := self._denied(request):
            return denied
        if ticket_id not in self.tickets:
            return self._not_found()
        return JSONResponse({"ticket": self.tickets[ticket_id]})

    async def create_ticket(self, request: Request) -> Response:
        if denied := self._denied(request):
            return denied
        raw = await request.body()
        key = request.headers.get("Idempotency-Key")
        fingerprint = hashlib.sha256(raw).hexdigest()
        with self._create_lock:
            if key and key in self.idempotency:
                saved, body = self.idempotency[key]
                if saved != fingerprint:
                    return JSONResponse(
                        {
                            "error": "IdempotentRequestError",
                            "description": "Request parameters do not match the original request",
                        },
                        400,
                    )
                return JSONResponse(body, 201, headers={"x-idempotency-lookup": "hit"})
            ticket = (json.loads(raw) or {}).get("ticket") or {}
            comment = ticket.get("comment") or {}
            if not comment.get("body"):
                return self._invalid("description", "Description: cannot be blank")
            body = self._create(request, ticket, comment)
            if key:
                self.idempotency[key] = (fingerprint, body)
        headers = {"x-idempotency-lookup": "miss"} if key else None
        return JSONResponse(body, 201, headers=headers)

    def _create(self, request: Request, ticket: dict[str, Any], comment: dict[str, Any]) -> Any:
        tid, now = next(self._ids), _now()
        email = (ticket.get("requester") or {}).get("email") or "anonymous@example.com"
        requester_id = self.users.setdefault(email, 9000 + len(self.users))
        self.tickets[tid] = {
            "id": tid,
            "url": self._url(request, tid),
            "external_id": ticket.get("external_id"),
            "subject": ticket.get("subject") or comment["body"][:60],
            "description": comment["body"],
            "status": ticket.get("status") or "new",
            "tags": sorted(set(ticket.get("tags") or [])),
            "requester_id": requester_id,
            "created_at": now,
            "updated_at": now,
        }
        self.comments[tid] = [comment]
        return {"ticket": self.tickets[tid], "audit": {"ticket_id": tid, "created_at": now}}

    async def update_ticket(self, request: Request, ticket_id: int) -> Response:
        if denied := self._denied(request):
            return denied
        ticket = self.tickets.get(ticket_id)
        if ticket is None:
            return self._not_found()
        change = (await request.json()).get("ticket") or {}
        if ticket["status"] == "closed":
            return self._invalid("status", "Status: closed prevents ticket update")
        if "status" in change and change["status"] not in STATUSES:
            return self._invalid("status", f"Status: {change['status']} is not valid")
        if change.get("comment"):
            self.comments[ticket_id].append(change["comment"])
        if "status" in change:
            ticket["status"] = change["status"]
        ticket["updated_at"] = _now()
        return JSONResponse({"ticket": ticket, "audit": {"ticket_id": ticket_id}})
