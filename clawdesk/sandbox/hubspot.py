"""Fake HubSpot CRM v3 contacts API (search, create, read, update)."""

from __future__ import annotations

import itertools
import uuid
from datetime import UTC, datetime
from typing import Any

from fastapi import Request, Response
from fastapi.responses import JSONResponse

from clawdesk.sandbox.base import FakeProvider

TOKEN = "pat-test-clawdesk"
CONTACTS = "/crm/v3/objects/contacts"
DEFAULTS = ("createdate", "email", "firstname", "hs_object_id", "lastmodifieddate", "lastname")


def _now() -> str:
    return datetime.now(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


class FakeHubSpot(FakeProvider):
    name = "hubspot"

    def __init__(self, token: str = TOKEN) -> None:
        super().__init__()
        self.token = token
        # Real search is eventually consistent: True hides contacts from search.
        self.search_lags = False
        self.reset_data()
        app = self.app
        app.post(CONTACTS + "/search")(self.search)
        app.post(CONTACTS)(self.create)
        app.get(CONTACTS + "/{contact_id}")(self.read)
        app.patch(CONTACTS + "/{contact_id}")(self.update)

    def reset_data(self) -> None:
        self._ids = itertools.count(101)
        self.contacts: dict[str, dict[str, Any]] = {}
        self.search_lags = False
        self._add({"email": "lena.vogel@example.com", "firstname": "Lena", "lastname": "Vogel"})

    def _add(self, properties: dict[str, Any]) -> dict[str, Any]:
        cid, now = str(next(self._ids)), _now()
        contact = {
            "id": cid,
            "properties": {
                **properties,
                "hs_object_id": cid,
                "createdate": now,
                "lastmodifieddate": now,
            },
            "createdAt": now,
            "updatedAt": now,
            "archived": False,
        }
        self.contacts[cid] = contact
        return contact

    def error_body(self, status: int, message: str) -> Any:
        body: dict[str, Any] = {
            "status": "error",
            "message": message,
            "correlationId": str(uuid.uuid4()),
        }
        if status == 429:
            body.update(
                message="You have reached your secondly limit.",
                errorType="RATE_LIMIT",
                policyName="SECONDLY",
            )
        return body

    def _err(self, status: int, message: str, category: str) -> Response:
        return JSONResponse({**self.error_body(status, message), "category": category}, status)

    def _denied(self, request: Request) -> Response | None:
        if request.headers.get("Authorization") != f"Bearer {self.token}":
            message = (
                "Authentication credentials not found. This API supports OAuth 2.0 "
                "authentication and you can find more details at "
                "https://developers.hubspot.com/docs/methods/auth/oauth-overview"
            )
            return self._err(401, message, "INVALID_AUTHENTICATION")
        return None

    @staticmethod
    def _view(contact: dict[str, Any], wanted: list[str] | None) -> dict[str, Any]:
        keys = set(wanted or ()) | set(DEFAULTS)
        props = {k: contact["properties"].get(k) for k in sorted(keys)}
        return {**contact, "properties": props}

    def _by_email(self, email: str) -> dict[str, Any] | None:
        for contact in self.contacts.values():
            if (contact["properties"].get("email") or "").lower() == email.lower():
                return contact
        return None

    async def search(self, request: Request) -> Response:
        if denied := self._denied(request):
            return denied
        body = await request.json()
        results = []
        for contact in [] if self.search_lags else self.contacts.values():
            for group in body.get("filterGroups") or [{"filters": []}]:
                if all(self._matches(contact, f) for f in group.get("filters", [])):
                    results.append(self._view(contact, body.get("properties")))
                    break
        limit = int(body.get("limit", 10))
        return JSONResponse({"total": len(results), "results": results[:limit]})

    @staticmethod
    def _matches(contact: dict[str, Any], flt: dict[str, Any]) -> bool:
        value = contact["properties"].get(flt["propertyName"])
        if flt.get("operator") != "EQ":
            return False
        return str(value or "").lower() == str(flt.get("value", "")).lower()

    async def create(self, request: Request) -> Response:
        if denied := self._denied(request):
            return denied
        properties = (await request.json()).get("properties") or {}
        if not properties:
            return self._err(400, "Property values were not valid", "VALIDATION_ERROR")
        existing = self._by_email(properties.get("email", ""))
        if existing is not None:
            return self._err(
                409, f"Contact already exists. Existing ID: {existing['id']}", "CONFLICT"
            )
        return JSONResponse(self._view(self._add(properties), list(properties)), 201)

    async def read(self, request: Request, contact_id: str, properties: str = "") -> Response:
        if denied := self._denied(request):
            return denied
        contact = self.contacts.get(contact_id)
        if contact is None:
            return self._err(404, "resource not found", "OBJECT_NOT_FOUND")
        return JSONResponse(self._view(contact, [p for p in properties.split(",") if p]))

    async def update(self, request: Request, contact_id: str) -> Response:
        if denied := self._denied(request):
            return denied
        contact = self.contacts.get(contact_id)
        if contact is None:
            return self._err(404, "resource not found", "OBJECT_NOT_FOUND")
        properties = (await request.json()).get("properties") or {}
        now = _now()
        contact["properties"].update(properties, lastmodifieddate=now)
        contact["updatedAt"] = now
        return JSONResponse(self._view(contact, list(properties)))
