"""ZendeskClient against the fake Support tickets API."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import pytest

from clawdesk.integrations.http import NotFound, ProviderError
from clawdesk.integrations.zendesk import Requester, ZendeskClient, basic_auth
from tests.fakes import zendesk
from tests.fakes.fixtures import Fakes
from tests.integrations.cases import FAST

LENA = Requester(name="Lena Vogel", email="lena.vogel@example.com")


@pytest.fixture()
async def client(fakes: Fakes) -> AsyncIterator[ZendeskClient]:
    async with ZendeskClient(
        fakes.zendesk.base_url, zendesk.EMAIL, zendesk.API_TOKEN, retry=FAST
    ) as c:
        yield c


async def test_create_ticket(client: ZendeskClient, fakes: Fakes) -> None:
    ticket = await client.create_ticket(
        "Refund question",
        "Customer asks about #1001",
        LENA,
        ["clawdesk", "refund"],
        "conv-1",
        idempotency_key="key-1",
    )
    assert (ticket.status, ticket.external_id, ticket.tags) == (
        "new",
        "conv-1",
        ["clawdesk", "refund"],
    )
    assert fakes.zendesk.comments[ticket.id][0]["body"] == "Customer asks about #1001"
    post = fakes.zendesk.calls_to("POST", "/api/v2/tickets.json")[0]
    assert post.headers["authorization"] == basic_auth(zendesk.EMAIL, zendesk.API_TOKEN)
    assert post.headers["idempotency-key"] == "key-1"


async def test_second_create_for_a_conversation_returns_its_ticket(
    client: ZendeskClient, fakes: Fakes
) -> None:
    first = await client.create_ticket("s", "c", LENA, [], "conv-2")
    again = await client.create_ticket("s", "c again", LENA, [], "conv-2")
    assert again.id == first.id
    assert len(fakes.zendesk.calls_to("POST", "/api/v2/tickets.json")) == 1


async def test_racing_creates_with_one_key_make_one_ticket(
    client: ZendeskClient, fakes: Fakes
) -> None:
    tickets = await asyncio.gather(
        *(
            client.create_ticket("s", "c", LENA, [], "conv-3", idempotency_key="k3")
            for _ in range(3)
        )
    )
    assert len({t.id for t in tickets}) == 1
    assert len(fakes.zendesk.tickets) == 1


async def test_closed_ticket_gets_a_follow_up(client: ZendeskClient, fakes: Fakes) -> None:
    first = await client.create_ticket("s", "c", LENA, [], "conv-4")
    fakes.zendesk.tickets[first.id]["status"] = "closed"
    follow_up = await client.create_ticket("s", "back again", LENA, [], "conv-4")
    assert follow_up.id != first.id


async def test_update_ticket_adds_comment_and_status(client: ZendeskClient, fakes: Fakes) -> None:
    ticket = await client.create_ticket("s", "c", LENA, [], "conv-5")
    updated = await client.update_ticket(ticket.id, "Refund sent", "solved", public=True)
    assert updated.status == "solved"
    assert fakes.zendesk.comments[ticket.id][-1] == {"body": "Refund sent", "public": True}


async def test_update_unknown_ticket_is_not_found(client: ZendeskClient) -> None:
    with pytest.raises(NotFound):
        await client.update_ticket(999, "hello")


async def test_update_closed_ticket_is_refused(client: ZendeskClient, fakes: Fakes) -> None:
    ticket = await client.create_ticket("s", "c", LENA, [], "conv-6")
    fakes.zendesk.tickets[ticket.id]["status"] = "closed"
    with pytest.raises(ProviderError) as caught:
        await client.update_ticket(ticket.id, "too late")
    assert caught.value.status == 422
    assert "closed" in caught.value.message
