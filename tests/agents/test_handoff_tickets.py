"""The handoff ticket state machine against real Postgres and the fake Zendesk over HTTP."""

from __future__ import annotations

import asyncio
import logging
import socket
from collections.abc import AsyncIterator
from datetime import timedelta

import pytest
from prometheus_client import REGISTRY
from pydantic import SecretStr

from clawdesk.handoff import records as store
from clawdesk.handoff.records import TicketStatus
from clawdesk.handoff.tickets import Backoff, Failure, HandoffTickets, classify, zendesk_client
from clawdesk.integrations.http import (
    AuthError,
    ProviderError,
    ProviderUnavailable,
    RateLimited,
    ServerError,
)
from clawdesk.settings import AppSettings
from clawdesk.storage import db
from schemas import Channel, Handoff, InboundMessage
from tests.fakes import zendesk
from tests.fakes.fixtures import Fakes, fake_servers, fakes

__all__ = ["fake_servers", "fakes"]

FAST = Backoff(initial_s=0.2, max_s=30.0)


def zendesk_settings(url: str) -> AppSettings:
    return AppSettings(
        _env_file=None,  # type: ignore[call-arg]
        zendesk_url=url,
        zendesk_email=zendesk.EMAIL,
        zendesk_api_token=SecretStr(zendesk.API_TOKEN),
        provider_timeout_s=2.0,
    )


def dead_url() -> str:
    """A loopback port nothing listens on: connections are refused, as with a Zendesk outage."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return f"http://127.0.0.1:{sock.getsockname()[1]}"


@pytest.fixture()
async def pool(database_url: str) -> AsyncIterator[object]:
    pool = await db.open_pool(database_url)
    yield pool
    await pool.close()


def desk(
    pool: object, settings: AppSettings, backoff: Backoff = FAST, reopen_window_s: float = 0.0
) -> HandoffTickets:
    return HandoffTickets(
        pool=pool,  # type: ignore[arg-type]
        client_factory=lambda: zendesk_client(settings),
        backoff=backoff,
        timeout_s=5.0,
        lease_s=30.0,
        reopen_window_s=reopen_window_s,
    )


async def handed_off(pool: object, conversation: str = "conv-1") -> Handoff:
    """A stored two-message conversation and the handoff the skills stage would emit."""
    for n, text in enumerate(["Where is my refund?", "I want to talk to a human"]):
        msg = InboundMessage(
            conversation_id=conversation,
            tenant_id="demo",
            channel=Channel.WEB,
            channel_message_id=f"{conversation}-m{n}",
            customer_id="lena",
            text=text,
        )
        await db.record_inbound(pool, msg)  # type: ignore[arg-type]
    return Handoff(
        conversation_id=conversation,
        tenant_id="demo",
        channel=Channel.WEB,
        reason="customer_request",
        customer_id="lena",
        last_message="I want to talk to a human",
    )


async def recorded(pool: object, tickets: HandoffTickets, conversation: str = "conv-1"):
    handoff = await handed_off(pool, conversation)
    row = await store.record_handoff(tickets.pool, handoff, tickets.lease_s)
    assert row is not None
    return row


async def make_due(pool: object, event_id: str) -> None:
    async with pool.connection() as conn:  # type: ignore[attr-defined]
        await conn.execute(
            "UPDATE handoff_tickets SET next_attempt_at = now() WHERE event_id = %s", (event_id,)
        )


async def conversation_status(pool: object, conversation: str) -> str:
    async with pool.connection() as conn:  # type: ignore[attr-defined]
        cur = await conn.execute("SELECT status FROM conversations WHERE id = %s", (conversation,))
        return (await cur.fetchone())["status"]


def failures(reason: str) -> float:
    labels = {"reason": reason}
    return REGISTRY.get_sample_value("clawdesk_handoff_ticket_failures_total", labels) or 0.0


async def test_ticket_is_created_with_the_conversation_history(pool, fakes: Fakes) -> None:
    tickets = desk(pool, zendesk_settings(fakes.zendesk.base_url))
    row = await recorded(pool, tickets)

    assert await tickets.attempt(row) is TicketStatus.CREATED

    stored = await store.fetch_ticket(pool, row.event_id)
    assert stored is not None
    assert (stored.status, stored.attempts) == (TicketStatus.CREATED, 1)
    ticket = fakes.zendesk.tickets[int(stored.ticket_id or 0)]
    assert ticket["external_id"] == "conv-1"
    assert "handoff" in ticket["tags"]
    comment = fakes.zendesk.comments[ticket["id"]][0]["body"]
    assert "Customer: Where is my refund?" in comment
    assert "Customer: I want to talk to a human" in comment
    post = fakes.zendesk.calls_to("POST", "/api/v2/tickets.json")[0]
    assert post.headers["idempotency-key"] == f"handoff-{row.event_id}"
    assert await conversation_status(pool, "conv-1") == "human"
    await tickets.aclose()


async def test_a_handoff_is_recorded_once_per_event(pool, fakes: Fakes) -> None:
    tickets = desk(pool, zendesk_settings(fakes.zendesk.base_url))
    handoff = await handed_off(pool)
    assert await store.record_handoff(pool, handoff, 30.0) is not None
    assert await store.record_handoff(pool, handoff, 30.0) is None
    await tickets.aclose()


async def test_server_error_then_success_makes_one_ticket(pool, fakes: Fakes) -> None:
    tickets = desk(pool, zendesk_settings(fakes.zendesk.base_url))
    row = await recorded(pool, tickets)
    fakes.zendesk.fail_next(1, 503)
    before = failures("server_error")

    assert await tickets.attempt(row) is TicketStatus.PENDING
    pending = await store.fetch_ticket(pool, row.event_id)
    assert pending is not None
    assert pending.attempts == 1
    assert "503" in pending.last_error
    assert failures("server_error") == before + 1

    await asyncio.sleep(FAST.initial_s + 0.1)  # the first backoff
    assert await tickets.retry_due(10) == [TicketStatus.CREATED]
    assert len(fakes.zendesk.tickets) == 1
    created = await store.fetch_ticket(pool, row.event_id)
    assert created is not None
    assert (created.status, created.attempts, created.last_error) == (TicketStatus.CREATED, 2, "")
    await tickets.aclose()


async def test_rate_limit_waits_what_retry_after_says(pool, fakes: Fakes) -> None:
    tickets = desk(pool, zendesk_settings(fakes.zendesk.base_url))
    row = await recorded(pool, tickets)
    fakes.zendesk.fail_next(1, 429, retry_after=1.5)

    assert await tickets.attempt(row) is TicketStatus.PENDING
    pending = await store.fetch_ticket(pool, row.event_id)
    assert pending is not None
    async with pool.connection() as conn:
        cur = await conn.execute(
            "SELECT next_attempt_at - updated_at AS wait FROM handoff_tickets WHERE event_id = %s",
            (row.event_id,),
        )
        wait = (await cur.fetchone())["wait"]
    # Retry-After (1.5 s), not the 0.2 s of our own first backoff.
    assert timedelta(seconds=1.4) <= wait <= timedelta(seconds=1.6)
    assert await tickets.retry_due(10) == []  # not due yet: nobody hammers a limited API

    await asyncio.sleep(1.6)
    assert await tickets.retry_due(10) == [TicketStatus.CREATED]
    await tickets.aclose()


async def test_zendesk_down_stays_pending_and_a_restarted_worker_creates_it(
    pool, fakes: Fakes
) -> None:
    down = desk(pool, zendesk_settings(dead_url()), Backoff(initial_s=0.05, max_s=0.1))
    row = await recorded(pool, down)
    before = failures("unavailable")

    assert await down.attempt(row) is TicketStatus.PENDING
    for _ in range(2):
        await asyncio.sleep(0.15)
        assert await down.retry_due(10) == [TicketStatus.PENDING]
    await down.aclose()
    pending = await store.fetch_ticket(pool, row.event_id)
    assert pending is not None
    assert (pending.status, pending.attempts) == (TicketStatus.PENDING, 3)
    assert failures("unavailable") == before + 3
    assert await store.count_pending(pool) == 1
    assert await conversation_status(pool, "conv-1") == "human"  # in the inbox meanwhile

    # A new worker (nothing in memory, only Postgres) with Zendesk back up.
    restarted = desk(pool, zendesk_settings(fakes.zendesk.base_url))
    await asyncio.sleep(0.15)
    assert await restarted.retry_due(10) == [TicketStatus.CREATED]
    assert REGISTRY.get_sample_value("clawdesk_handoff_tickets_pending") == 0
    await restarted.aclose()


async def test_a_refused_ticket_is_failed_not_retried(pool, fakes: Fakes) -> None:
    tickets = desk(pool, zendesk_settings(fakes.zendesk.base_url))
    row = await recorded(pool, tickets)
    fakes.zendesk.fail_next(1, 422)

    assert await tickets.attempt(row) is TicketStatus.FAILED
    await make_due(pool, row.event_id)
    assert await tickets.retry_due(10) == []
    failed = await store.fetch_ticket(pool, row.event_id)
    assert failed is not None
    assert failed.status is TicketStatus.FAILED
    assert "422" in failed.last_error
    await tickets.aclose()


async def test_no_ticket_system_is_logged_once_and_the_conversation_stays_in_the_inbox(
    pool, caplog: pytest.LogCaptureFixture
) -> None:
    tickets = desk(pool, AppSettings(_env_file=None, zendesk_url=""))  # type: ignore[call-arg]
    first = await recorded(pool, tickets, "conv-a")
    second = await recorded(pool, tickets, "conv-b")

    with caplog.at_level(logging.WARNING, logger="clawdesk.handoff.tickets"):
        assert await tickets.attempt(first) is TicketStatus.NOT_CONFIGURED
        assert await tickets.attempt(second) is TicketStatus.NOT_CONFIGURED

    warnings = [r for r in caplog.records if "not configured" in r.getMessage()]
    assert len(warnings) == 1
    assert warnings[0].missing == ["zendesk_url", "zendesk_email", "zendesk_api_token"]
    for row, conversation in ((first, "conv-a"), (second, "conv-b")):
        stored = await store.fetch_ticket(pool, row.event_id)
        assert stored is not None
        assert stored.status is TicketStatus.NOT_CONFIGURED
        assert await conversation_status(pool, conversation) == "human"


async def test_a_claimed_ticket_is_not_claimed_twice(pool, fakes: Fakes) -> None:
    tickets = desk(pool, zendesk_settings(fakes.zendesk.base_url))
    row = await recorded(pool, tickets)
    await make_due(pool, row.event_id)

    first, second = await asyncio.gather(
        store.claim_due(pool, 10, 30.0), store.claim_due(pool, 10, 30.0)
    )
    assert sorted([len(first), len(second)]) == [0, 1]
    assert await store.claim_due(pool, 10, 30.0) == []  # the lease holds
    await tickets.aclose()


async def test_a_late_hand_back_does_not_undo_a_newer_handoff(pool, fakes: Fakes) -> None:
    tickets = desk(pool, zendesk_settings(fakes.zendesk.base_url))
    handoff = await handed_off(pool)
    await store.record_handoff(pool, handoff, 30.0)

    assert not await store.hand_back(pool, "conv-1", handoff.occurred_at - timedelta(seconds=5))
    assert await conversation_status(pool, "conv-1") == "human"
    assert await store.hand_back(pool, "conv-1", handoff.occurred_at + timedelta(seconds=5))
    assert await conversation_status(pool, "conv-1") == "bot"
    await tickets.aclose()


@pytest.mark.parametrize(
    ("attempts", "retry_after", "expected"),
    [
        (1, None, 5.0),
        (2, None, 10.0),
        (4, None, 40.0),
        (10, None, 600.0),
        (3, 2.0, 2.0),
        (1, 9999.0, 600.0),
        (1, 0.0, 0.0),
    ],
)
def test_backoff_doubles_to_its_cap_and_honours_retry_after(attempts, retry_after, expected):
    assert Backoff(initial_s=5.0, max_s=600.0).delay(attempts, retry_after) == expected


@pytest.mark.parametrize(
    ("error", "expected"),
    [
        (
            RateLimited(429, None, "slow down", "zendesk", retry_after=3.0),
            Failure("rate_limited", True, 3.0),
        ),
        (ServerError(502, None, "bad gateway", "zendesk"), Failure("server_error", True)),
        (
            ProviderUnavailable(0, "ConnectError", "refused", "zendesk"),
            Failure("unavailable", True),
        ),
        (TimeoutError(), Failure("timeout", True)),
        (AuthError(401, None, "Couldn't authenticate you", "zendesk"), Failure("auth", True)),
        (ProviderError(422, "RecordInvalid", "bad", "zendesk"), Failure("invalid", False)),
        (RuntimeError("bug"), Failure("error", True)),
    ],
)
def test_failures_are_classified(error, expected):
    assert classify(error) == expected


async def age(pool: object, event_id: str, days: int) -> None:
    async with pool.connection() as conn:  # type: ignore[attr-defined]
        await conn.execute(
            "UPDATE handoff_tickets SET handed_off_at = handed_off_at - make_interval(days => %s)"
            " WHERE event_id = %s",
            (days, event_id),
        )


async def test_handoffs_without_a_ticket_system_get_tickets_once_one_is_configured(
    pool, fakes: Fakes
) -> None:
    unconfigured = AppSettings(_env_file=None, zendesk_url="")  # type: ignore[call-arg]
    before = desk(pool, unconfigured, reopen_window_s=86400.0)
    recent, old = await recorded(pool, before, "conv-a"), await recorded(pool, before, "conv-b")
    for row in (recent, old):
        assert await before.attempt(row) is TicketStatus.NOT_CONFIGURED
    await age(pool, old.event_id, 30)  # handed off a month ago: beyond the window
    # A worker still without Zendesk leaves them alone, tick after tick.
    assert await before.retry_due(10) == []
    assert await before.retry_due(10) == []

    # The worker restarts with Zendesk configured: its first tick opens the recent one.
    after = desk(pool, zendesk_settings(fakes.zendesk.base_url), reopen_window_s=86400.0)
    assert await after.retry_due(10) == [TicketStatus.CREATED]
    assert await after.retry_due(10) == []
    created = await store.fetch_ticket(pool, recent.event_id)
    stale = await store.fetch_ticket(pool, old.event_id)
    assert created is not None and stale is not None
    assert (created.status, created.attempts, created.last_error) == (TicketStatus.CREATED, 1, "")
    assert created.ticket_id is not None
    assert stale.status is TicketStatus.NOT_CONFIGURED
    [ticket] = fakes.zendesk.tickets.values()
    assert ticket["external_id"] == "conv-a"
    assert REGISTRY.get_sample_value("clawdesk_handoff_tickets_pending") == 0
    await after.aclose()


async def test_a_zero_window_reopens_nothing(pool, fakes: Fakes) -> None:
    unconfigured = AppSettings(_env_file=None, zendesk_url="")  # type: ignore[call-arg]
    row = await recorded(pool, desk(pool, unconfigured))
    assert await desk(pool, unconfigured).attempt(row) is TicketStatus.NOT_CONFIGURED

    configured = desk(pool, zendesk_settings(fakes.zendesk.base_url), reopen_window_s=0.0)
    assert await configured.retry_due(10) == []
    stored = await store.fetch_ticket(pool, row.event_id)
    assert stored is not None and stored.status is TicketStatus.NOT_CONFIGURED
    assert fakes.zendesk.tickets == {}
    await configured.aclose()
