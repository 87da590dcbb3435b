"""Request bodies over 10 MB are refused with 413, declared or streamed."""

from __future__ import annotations

from collections.abc import AsyncIterator

import httpx
from fastapi import FastAPI

from clawdesk.gateway.limits import MAX_BODY_BYTES

from .conftest import Gateway
from .fakes import FakeProducer

ELEVEN_MB = 11 * 1024 * 1024


def test_declared_oversized_body_is_413_and_nothing_enqueued(gateway: Gateway) -> None:
    body = b'{"client_message_id": "c-1", "text": "' + b"x" * ELEVEN_MB + b'"}'

    response = gateway.client.post(
        "/api/web/messages", content=body, headers={"content-type": "application/json"}
    )

    assert response.status_code == 413
    assert "error" in response.json()
    assert gateway.producer.sent == []


async def test_streamed_oversized_body_is_413_and_nothing_enqueued(
    app: FastAPI, fakes: tuple[FakeProducer, object, object]
) -> None:
    producer = fakes[0]

    async def chunks() -> AsyncIterator[bytes]:
        # No Content-Length: the limit has to be enforced while the body streams.
        yield b'{"client_message_id": "c-1", "text": "'
        for _ in range(ELEVEN_MB // (1024 * 1024)):
            yield b"x" * (1024 * 1024)
        yield b'"}'

    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://gw") as client:
            response = await client.post(
                "/api/web/messages", content=chunks(), headers={"content-type": "application/json"}
            )

    assert response.status_code == 413
    assert producer.sent == []


def test_body_just_under_the_limit_reaches_validation(gateway: Gateway) -> None:
    filler = b"x" * (MAX_BODY_BYTES - 100)
    body = b'{"client_message_id": "c-1", "text": "' + filler + b'"}'

    response = gateway.client.post(
        "/api/web/messages", content=body, headers={"content-type": "application/json"}
    )

    # Through the size limit; refused by the 4000-character text rule instead.
    assert response.status_code == 422
