"""HubSpot CRM v3 contacts: search by e-mail, create, update.

Bearer auth (private-app token). Errors are
`{"status": "error", "message", "category", "correlationId"}`. Contacts are unique by
e-mail: a create that races another gets 409 "Contact already exists. Existing ID: N",
which `upsert_contact` turns into an update of N.
"""

from __future__ import annotations

import re
from datetime import datetime
from typing import Any

import httpx
from pydantic import BaseModel, ConfigDict, Field

from clawdesk.integrations.http import (
    ProviderClient,
    ProviderError,
    RetryPolicy,
    json_or_none,
    make_client,
)

BASE_URL = "https://api.hubapi.com"
CONTACTS = "/crm/v3/objects/contacts"
DEFAULT_PROPERTIES = ("email", "firstname", "lastname", "phone", "company", "lifecyclestage")
_EXISTING_ID = re.compile(r"Existing ID:\s*(\d+)")


class Contact(BaseModel):
    """A HubSpot contact: its id and the properties asked for."""

    model_config = ConfigDict(extra="ignore", frozen=True, populate_by_name=True)

    id: str
    properties: dict[str, str | None] = Field(default_factory=dict)
    created_at: datetime | None = Field(default=None, alias="createdAt")
    updated_at: datetime | None = Field(default=None, alias="updatedAt")
    archived: bool = False

    @property
    def email(self) -> str | None:
        return self.properties.get("email")


class HubSpotClient(ProviderClient):
    """Contacts in one HubSpot account."""

    provider = "hubspot"

    def __init__(
        self,
        token: str,
        *,
        base_url: str = BASE_URL,
        timeout: float = 10.0,
        retry: RetryPolicy | None = None,
        http: httpx.AsyncClient | None = None,
    ) -> None:
        headers = {"Authorization": f"Bearer {token}"}
        super().__init__(http or make_client(base_url, headers, timeout), retry)

    def error_details(self, response: httpx.Response) -> tuple[str | None, str]:
        body = json_or_none(response)
        if isinstance(body, dict):
            return body.get("category") or body.get("errorType"), str(body.get("message", ""))
        return None, response.reason_phrase

    async def get_contact(self, contact_id: str) -> Contact:
        """A contact by id (raises `NotFound`)."""
        response = await self.request(
            "GET",
            f"{CONTACTS}/{contact_id}",
            params={"properties": ",".join(DEFAULT_PROPERTIES)},
        )
        return Contact.model_validate(response.json())

    async def find_contact(self, email: str) -> Contact | None:
        """The contact with this e-mail, or None."""
        body = {
            "filterGroups": [
                {"filters": [{"propertyName": "email", "operator": "EQ", "value": email}]}
            ],
            "properties": list(DEFAULT_PROPERTIES),
            "limit": 1,
        }
        response = await self.request("POST", f"{CONTACTS}/search", json=body)
        results = response.json().get("results") or []
        return Contact.model_validate(results[0]) if results else None

    async def upsert_contact(self, email: str, properties: dict[str, Any]) -> Contact:
        """Update the contact with this e-mail, creating it if there is none."""
        props = {k: str(v) for k, v in properties.items() if k != "email"}
        existing = await self.find_contact(email)
        if existing is not None:
            return await self._update(existing.id, props)
        try:
            response = await self.request(
                "POST", CONTACTS, json={"properties": {"email": email, **props}}
            )
        except ProviderError as exc:
            # Created by someone else since our search (search is eventually consistent).
            match = _EXISTING_ID.search(exc.message) if exc.status == 409 else None
            if match is None:
                raise
            return await self._update(match.group(1), props)
        return Contact.model_validate(response.json())

    async def _update(self, contact_id: str, properties: dict[str, str]) -> Contact:
        response = await self.request(
            "PATCH", f"{CONTACTS}/{contact_id}", json={"properties": properties}
        )
        return Contact.model_validate(response.json())
