"""The behaviour every provider client shares, exercised against each fake over HTTP."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from email.utils import format_datetime

import pytest

from clawdesk.integrations.http import (
    AuthError,
    NotFound,
    ProviderUnavailable,
    RetryPolicy,
    ServerError,
    parse_retry_after,
)
from clawdesk.integrations.shopify import ShopifyClient
from clawdesk.runtime.ports import free_port
from tests.fakes.fixtures import Fakes
from tests.integrations.cases import CASES, Case

by_name = pytest.mark.parametrize("case", CASES, ids=[c.name for c in CASES])


@pytest.mark.parametrize(
    ("header", "seconds"),
    [(None, None), ("", None), ("2", 2.0), ("2.0", 2.0), ("-3", 0.0), ("soon", None)],
)
def test_retry_after_reads_seconds(header: str | None, seconds: float | None) -> None:
    assert parse_retry_after(header) == seconds


def test_retry_after_reads_an_http_date() -> None:
    now = datetime(2026, 1, 1, 12, 0, 0, tzinfo=UTC)
    header = format_datetime(now + timedelta(seconds=30), usegmt=True)
    assert parse_retry_after(header, now=now) == 30.0


@by_name
async def test_wrong_secret_raises_auth_error_without_retrying(case: Case, fakes: Fakes) -> None:
    async with case.make(fakes, "wrong-secret") as client:
        with pytest.raises(AuthError) as caught:
            await case.ok(client)
    assert caught.value.status == 401
    assert caught.value.provider == case.name
    assert len(case.fake(fakes).calls) == 1


@by_name
async def test_unknown_object_raises_not_found(case: Case, fakes: Fakes) -> None:
    async with case.make(fakes, None) as client:
        with pytest.raises(NotFound) as caught:
            await case.missing(client)
    assert caught.value.status == 404
    assert caught.value.message


@by_name
async def test_429_waits_what_retry_after_says_then_succeeds(case: Case, fakes: Fakes) -> None:
    fake = case.fake(fakes)
    fake.fail_next(1, status=429, retry_after=1)
    async with case.make(fakes, None) as client:
        await case.ok(client)
    first, second = fake.calls
    # Retry-After: 1, not the 50 ms backoff of the policy (tolerance for a busy CI box).
    assert 0.95 <= second.at - first.at < 2.0


@by_name
async def test_5xx_is_retried_until_success(case: Case, fakes: Fakes) -> None:
    fake = case.fake(fakes)
    fake.fail_next(2, status=503)
    async with case.make(fakes, None) as client:
        result = await case.ok(client)
    assert result is not None or case.name == "zendesk"  # zendesk's lookup may be empty
    assert len(fake.calls) == 3


@by_name
async def test_5xx_every_attempt_raises_server_error(case: Case, fakes: Fakes) -> None:
    fake = case.fake(fakes)
    fake.fail_next(5, status=502)
    async with case.make(fakes, None) as client:
        with pytest.raises(ServerError) as caught:
            await case.ok(client)
    assert caught.value.status == 502
    assert len(fake.calls) == 3  # the policy's attempts, no more


async def test_unreachable_provider_raises_provider_unavailable() -> None:
    policy = RetryPolicy(attempts=2, initial_backoff_s=0.01, max_backoff_s=0.01, jitter_s=0)
    url = f"http://127.0.0.1:{free_port()}"
    async with ShopifyClient(url, "token", retry=policy) as client:
        with pytest.raises(ProviderUnavailable) as caught:
            await client.get_order_by_name("#1001")
    assert caught.value.status == 0


async def test_retry_after_longer_than_the_cap_is_capped(fakes: Fakes) -> None:
    fakes.shopify.fail_next(1, status=429, retry_after=60)
    policy = RetryPolicy(attempts=2, max_retry_after_s=0.2)
    async with ShopifyClient(fakes.shopify.base_url, "shpat_test_clawdesk", retry=policy) as c:
        assert await c.get_order_by_name("1001") is not None
    first, second = fakes.shopify.calls
    assert second.at - first.at < 1.0
