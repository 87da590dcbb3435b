"""Per-customer and per-tenant message limits kept in a real Redis: 429 with Retry-After
and a structured body, nothing enqueued; Redis down lets messages through."""

from __future__ import annotations

import asyncio
import time
import uuid
from pathlib import Path

import pytest
from prometheus_client import REGISTRY

from clawdesk.gateway.limits import LimitExceeded, RateLimiter
from clawdesk.runtime.ports import free_port
from clawdesk.runtime.stores import EmbeddedRedis
from schemas import Channel, InboundMessage

from .conftest import Gateway

# A database of its own, so the counters never meet the cache tests' keys.
REDIS_DB = 14


@pytest.fixture
def limiter_url(redis_url: str) -> str:
    base = redis_url.rsplit("/", 1)[0] if redis_url.count("/") > 2 else redis_url
    return f"{base}/{REDIS_DB}"


def limiter(url: str, customer: str = "2/minute", tenant: str = "100/minute") -> RateLimiter:
    # A fresh key prefix per test: counters from another test (or run) never count here.
    prefix = f"test:rl:{uuid.uuid4().hex[:8]}"
    return RateLimiter(url, customer=customer, tenant=tenant, key_prefix=prefix)


def post(gateway: Gateway, customer: str, n: int) -> object:
    return gateway.client.post(
        "/api/web/messages",
        json={"customer_id": customer, "client_message_id": f"m-{customer}-{n}", "text": "hi"},
    )


def checks(scope: str, result: str) -> float:
    value = REGISTRY.get_sample_value(
        "clawdesk_rate_limit_checks_total", {"scope": scope, "result": result}
    )
    return value or 0.0


def test_a_customer_over_the_limit_gets_429_with_retry_after(
    gateway: Gateway, limiter_url: str
) -> None:
    gateway.app.state.rate_limiter = limiter(limiter_url, customer="2/minute")

    answers = [post(gateway, "ana", n) for n in range(3)]

    assert [a.status_code for a in answers] == [202, 202, 429]  # type: ignore[attr-defined]
    refused = answers[2]
    body = refused.json()  # type: ignore[attr-defined]
    assert body["code"] == "rate_limited"
    assert body["scope"] == "customer"
    assert body["limit"] == "2 per 1 minute"
    assert 1 <= int(refused.headers["retry-after"]) <= 60  # type: ignore[attr-defined]
    assert body["retry_after_s"] == int(refused.headers["retry-after"])  # type: ignore[attr-defined]
    assert len(gateway.producer.sent) == 2
    # Another customer of the same tenant is not held back by Ana's limit.
    assert post(gateway, "bo", 0).status_code == 202  # type: ignore[attr-defined]


def test_a_tenant_over_its_limit_gets_429_whoever_writes(
    gateway: Gateway, limiter_url: str
) -> None:
    gateway.app.state.rate_limiter = limiter(limiter_url, customer="10/minute", tenant="3/minute")

    answers = [post(gateway, f"customer-{n}", n) for n in range(4)]

    assert [a.status_code for a in answers] == [202, 202, 202, 429]  # type: ignore[attr-defined]
    assert answers[3].json()["scope"] == "tenant"  # type: ignore[attr-defined]
    assert len(gateway.producer.sent) == 3


def test_redis_down_lets_messages_through_and_counts_the_error(gateway: Gateway) -> None:
    dead = f"redis://127.0.0.1:{free_port()}/0"
    gateway.app.state.rate_limiter = limiter(dead, customer="1/minute")
    before = checks("customer", "error")

    answers = [post(gateway, "ana", n) for n in range(3)]

    assert [a.status_code for a in answers] == [202, 202, 202]  # type: ignore[attr-defined]
    assert len(gateway.producer.sent) == 3
    assert checks("customer", "error") - before == 3


def _message(customer: str, n: int, tenant: str = "demo") -> InboundMessage:
    return InboundMessage(
        conversation_id=f"c-{customer}",
        tenant_id=tenant,
        channel=Channel.WHATSAPP,
        channel_message_id=f"m-{customer}-{n}",
        customer_id=customer,
        text="hi",
    )


def test_a_refused_batch_uses_up_no_allowance(limiter_url: str) -> None:
    # One webhook call can carry several messages; a refused call is retried by the
    # provider, so it must not have counted the messages that came before the refusal.
    lim = limiter(limiter_url, customer="2/minute", tenant="4/minute")

    async def scenario() -> list[object]:
        return [
            await lim.check([_message("ana", n) for n in range(3)]),  # 3 > 2: refused
            await lim.check([_message("ana", 0), _message("bo", 0)]),  # 2 slots left
            # each customer within 2, the tenant not: 2 + 3 > 4
            await lim.check([_message("bo", 1), _message("cy", 0), _message("cy", 1)]),
            await lim.check([_message("ana", 1), _message("bo", 1)]),  # 4 of 4
            await lim.check([_message("cy", 2)]),  # tenant full
        ]

    answers = asyncio.run(scenario())
    assert isinstance(answers[0], LimitExceeded) and answers[0].scope == "customer"
    assert answers[1] is None
    assert isinstance(answers[2], LimitExceeded) and answers[2].scope == "tenant"
    assert answers[3] is None
    assert isinstance(answers[4], LimitExceeded) and answers[4].scope == "tenant"


async def test_the_limiter_refuses_again_soon_after_redis_comes_back(tmp_path: Path) -> None:
    # A Redis of its own, stopped and started again on the same port.
    port = free_port()
    server = EmbeddedRedis(tmp_path / "r.db", port=port)
    url = server.start()
    lim = limiter(url, customer="2/minute")
    sent = iter(range(1_000))

    async def ana() -> LimitExceeded | None:
        return await lim.check([_message("ana", next(sent))])

    try:
        assert [await ana(), await ana()] == [None, None]
        assert isinstance(await ana(), LimitExceeded)

        server.stop()
        assert [await ana() for _ in range(3)] == [None, None, None]  # fail open
        assert failing_open() == 1

        server = EmbeddedRedis(tmp_path / "r.db", port=port)
        server.start()
        back = time.monotonic()
        verdict: LimitExceeded | None = None
        deadline = back + RateLimiter.RETRY_REDIS_S + 5.0
        while verdict is None and time.monotonic() < deadline:
            verdict = await ana()
            await asyncio.sleep(0.1)
    finally:
        await lim.aclose()
        server.stop()

    assert isinstance(verdict, LimitExceeded), "still failing open after Redis came back"
    assert failing_open() == 0


def failing_open() -> float:
    return REGISTRY.get_sample_value("clawdesk_rate_limit_failing_open") or 0.0
