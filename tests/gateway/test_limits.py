"""Request bodies over the limit are refused with 413, declared or streamed; the limit
comes from the producers' maximum message size, so the largest body taken fits a topic."""

from __future__ import annotations

from collections.abc import AsyncIterator

import httpx
from aiokafka import AIOKafkaProducer
from fastapi import FastAPI

from clawdesk.gateway.limits import EVENT_HEADROOM_BYTES, MAX_BODY_BYTES, max_body_bytes
from clawdesk.settings import DEFAULT_MAX_MESSAGE_BYTES
from schemas import Channel, InboundMessage

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


def web_body(size: int) -> bytes:
    """A web-message body of exactly `size` bytes."""
    head, tail = b'{"client_message_id": "c-1", "text": "', b'"}'
    return head + b"x" * (size - len(head) - len(tail)) + tail


def test_body_one_byte_over_the_limit_is_413_and_nothing_enqueued(gateway: Gateway) -> None:
    response = gateway.client.post(
        "/api/web/messages",
        content=web_body(MAX_BODY_BYTES + 1),
        headers={"content-type": "application/json"},
    )

    assert response.status_code == 413
    assert gateway.producer.sent == []


def test_the_body_limit_follows_the_message_size_setting() -> None:
    assert MAX_BODY_BYTES == DEFAULT_MAX_MESSAGE_BYTES - EVENT_HEADROOM_BYTES
    assert max_body_bytes(4 * 1024 * 1024) == 4 * 1024 * 1024 - EVENT_HEADROOM_BYTES


async def test_an_event_wrapping_the_largest_body_taken_fits_the_inbound_topic(
    broker: str,
) -> None:
    # The largest body the gateway takes, kept whole inside an inbound event (the
    # gateway's producer has aiokafka's default max_request_size, as here).
    body = web_body(MAX_BODY_BYTES).decode()
    event = InboundMessage.model_construct(
        **InboundMessage(
            conversation_id="c-big",
            tenant_id="demo",
            channel=Channel.WEB,
            channel_message_id="m-big",
            customer_id="u-1",
            text="",
            metadata={"source": "test"},
        ).model_dump(exclude={"text"}),
        text=body,
    )
    value = event.model_dump_json().encode()
    producer = AIOKafkaProducer(bootstrap_servers=broker, acks="all")
    await producer.start()
    try:
        metadata = await producer.send_and_wait("test.limits.inbound", value, key=b"c-big")
    finally:
        await producer.stop()

    assert len(value) > MAX_BODY_BYTES
    assert metadata.offset >= 0


def test_the_email_webhook_keeps_its_own_larger_limit() -> None:
    from starlette.applications import Starlette
    from starlette.requests import Request
    from starlette.responses import PlainTextResponse
    from starlette.routing import Route
    from starlette.testclient import TestClient

    from clawdesk.gateway.limits import BodySizeLimit

    async def echo(request: Request) -> PlainTextResponse:
        return PlainTextResponse(str(len(await request.body())))

    inner = Starlette(
        routes=[
            Route("/webhooks/email", echo, methods=["POST"]),
            Route("/api/web/messages", echo, methods=["POST"]),
        ]
    )
    client = TestClient(BodySizeLimit(inner, max_bytes=100))

    assert client.post("/webhooks/email", content=b"x" * 1000).text == "1000"
    assert client.post("/api/web/messages", content=b"x" * 1000).status_code == 413
