"""HubSpotClient against the fake CRM v3 contacts API."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from clawdesk.integrations.hubspot import HubSpotClient
from tests.fakes import hubspot
from tests.fakes.fixtures import Fakes
from tests.integrations.cases import FAST


@pytest.fixture()
async def client(fakes: Fakes) -> AsyncIterator[HubSpotClient]:
    async with HubSpotClient(hubspot.TOKEN, base_url=fakes.hubspot.base_url, retry=FAST) as c:
        yield c


async def test_find_contact_by_email(client: HubSpotClient, fakes: Fakes) -> None:
    contact = await client.find_contact("Lena.Vogel@example.com")
    assert contact is not None
    assert contact.id == "101" and contact.properties["firstname"] == "Lena"
    assert await client.find_contact("nobody@example.com") is None
    assert fakes.hubspot.calls[0].headers["authorization"] == f"Bearer {hubspot.TOKEN}"


async def test_upsert_creates_then_updates_the_same_contact(
    client: HubSpotClient, fakes: Fakes
) -> None:
    created = await client.upsert_contact("new@example.com", {"firstname": "Nia"})
    updated = await client.upsert_contact("new@example.com", {"lastname": "Okafor"})
    assert created.id == updated.id
    assert updated.properties["lastname"] == "Okafor"
    stored = fakes.hubspot.contacts[created.id]["properties"]
    assert (stored["firstname"], stored["lastname"]) == ("Nia", "Okafor")
    assert len(fakes.hubspot.contacts) == 2


async def test_upsert_updates_when_create_conflicts(client: HubSpotClient, fakes: Fakes) -> None:
    fakes.hubspot.search_lags = True  # search does not see lena yet: create gets a 409
    contact = await client.upsert_contact("lena.vogel@example.com", {"phone": "+49 30 123"})
    assert contact.id == "101"
    assert fakes.hubspot.contacts["101"]["properties"]["phone"] == "+49 30 123"
    assert len(fakes.hubspot.contacts) == 1
