"""The gateway app factory: FastAPI app, lifespan-owned connections, error shapes."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from contextlib import AbstractAsyncContextManager, AsyncExitStack, asynccontextmanager
from dataclasses import replace
from typing import Any

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer
from fastapi import FastAPI, Request
from fastapi.encoders import jsonable_encoder
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from fastapi.staticfiles import StaticFiles
from psycopg_pool import AsyncConnectionPool

from clawdesk.gateway.fanout import ReplyConsumer, ReplyHub, pump_replies
from clawdesk.gateway.inbox import router as inbox_router
from clawdesk.gateway.intake import redrive_open_messages
from clawdesk.gateway.limits import MAX_BODY_BYTES, BodySizeLimit
from clawdesk.gateway.metrics import REJECTED_REQUESTS
from clawdesk.gateway.routes import WEB_DIR, GatewayError, router
from clawdesk.gateway.state import GatewayState, InboundProducer
from clawdesk.gateway.uploads import router as uploads_router
from clawdesk.gateway.uploads import upload_limits
from clawdesk.gateway.webhooks import channel_routers
from clawdesk.settings import AppSettings
from clawdesk.storage.db import open_pool
from topics import inbound_spec, outbound_spec

log = logging.getLogger(__name__)

CLIENT_ID = "clawdesk-gateway"
CLOSE_TIMEOUT_S = 10.0


def create_app(
    settings: AppSettings,
    *,
    bootstrap_servers: str,
    database_url: str,
    producer: InboundProducer | None = None,
    pool: AsyncConnectionPool | None = None,
    reply_consumer: ReplyConsumer | None = None,
    max_body_bytes: int = MAX_BODY_BYTES,
    redrive: bool = True,
) -> FastAPI:
    """Build the gateway app.

    The lifespan starts a Kafka producer, a Postgres pool and an outbound-topic
    consumer from `bootstrap_servers` / `database_url`. A `producer`, `pool` or
    `reply_consumer` passed in is used instead, already started, and left for the
    caller to close (tests pass fakes this way). `redrive` runs the re-driver of open
    inbound messages (`clawdesk.gateway.intake`) for the app's lifetime.
    """
    app = FastAPI(
        title="clawdesk gateway",
        lifespan=_lifespan(
            settings,
            bootstrap_servers=bootstrap_servers,
            database_url=database_url,
            producer=producer,
            pool=pool,
            reply_consumer=reply_consumer,
            redrive=redrive,
        ),
    )
    app.add_middleware(BodySizeLimit, max_bytes=max_body_bytes, path_limits=upload_limits(settings))
    app.add_exception_handler(GatewayError, _gateway_error)
    app.add_exception_handler(RequestValidationError, _validation_error)
    app.include_router(router)
    for channel_router in channel_routers():  # each registered channel's webhooks
        app.include_router(channel_router)
    app.include_router(inbox_router)
    app.include_router(uploads_router)
    app.mount("/web", StaticFiles(directory=WEB_DIR), name="web")
    return app


def _lifespan(
    settings: AppSettings,
    *,
    bootstrap_servers: str,
    database_url: str,
    producer: InboundProducer | None,
    pool: AsyncConnectionPool | None,
    reply_consumer: ReplyConsumer | None,
    redrive: bool,
) -> Callable[[FastAPI], AbstractAsyncContextManager[None]]:
    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        async with AsyncExitStack() as stack:
            consumer = reply_consumer or await _start_consumer(settings, bootstrap_servers, stack)
            hub = ReplyHub()
            replies_task = asyncio.create_task(pump_replies(consumer, hub), name="gateway-replies")
            stack.push_async_callback(_cancel, replies_task)
            state = GatewayState(
                settings=settings,
                producer=producer or await _start_producer(bootstrap_servers, stack),
                pool=pool or await _open_pool(database_url, stack),
                hub=hub,
                inbound_topic=inbound_spec.name(settings),
                replies_task=replies_task,
            )
            if redrive:
                task = asyncio.create_task(redrive_open_messages(state), name="gateway-redrive")
                stack.push_async_callback(_cancel, task)
                state = replace(state, redrive_task=task)
            app.state.gateway = state
            log.info("gateway started", extra={"inbound_topic": inbound_spec.name(settings)})
            yield
        log.info("gateway stopped")

    return lifespan


async def _start_producer(bootstrap_servers: str, stack: AsyncExitStack) -> InboundProducer:
    producer = AIOKafkaProducer(
        bootstrap_servers=bootstrap_servers,
        client_id=CLIENT_ID,
        acks="all",
        # The embedded broker may not support idempotent producers; duplicates from a
        # retried send are dropped by the pipeline's dedupe on channel_message_id.
        enable_idempotence=False,
        # The caller waits for the ack, so batching buys little; keep latency low.
        linger_ms=5,
    )
    # Registered before start: a failed start still leaves a client to close.
    stack.push_async_callback(_close, "producer", producer.stop)
    await producer.start()
    return producer


async def _start_consumer(
    settings: AppSettings, bootstrap_servers: str, stack: AsyncExitStack
) -> ReplyConsumer:
    consumer = AIOKafkaConsumer(
        outbound_spec.name(settings),
        bootstrap_servers=bootstrap_servers,
        client_id=CLIENT_ID,
        # No group: every gateway instance sees every reply (it holds some sockets),
        # and replies from before start are for sockets that resync from history.
        group_id=None,
        auto_offset_reset="latest",
        enable_auto_commit=False,
    )
    stack.push_async_callback(_close, "reply consumer", consumer.stop)
    await consumer.start()
    return consumer


async def _open_pool(database_url: str, stack: AsyncExitStack) -> AsyncConnectionPool:
    pool = await open_pool(database_url)
    stack.push_async_callback(_close, "database pool", pool.close)
    return pool


async def _close(name: str, close: Callable[[], Awaitable[None]]) -> None:
    """One shutdown step, bounded; its failure is logged so the other steps still run."""
    try:
        async with asyncio.timeout(CLOSE_TIMEOUT_S):
            await close()
    except asyncio.CancelledError:
        task = asyncio.current_task()
        if task is not None and task.cancelling():
            raise  # we are being cancelled ourselves
        # aiokafka's consumer.stop() re-raises the cancellation of its own fetch task
        # when the broker is already gone; that must not abort the rest of shutdown.
        log.warning("closing failed", extra={"resource": name, "error": "CancelledError"})
    except Exception as err:
        log.warning("closing failed", extra={"resource": name, "error": repr(err)})


async def _cancel(task: asyncio.Task[None]) -> None:
    task.cancel()
    await asyncio.gather(task, return_exceptions=True)


async def _gateway_error(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, GatewayError)
    headers = getattr(exc, "headers", None)  # e.g. the inbox's WWW-Authenticate
    return JSONResponse(exc.body(), status_code=exc.status, headers=headers)


async def _validation_error(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, RequestValidationError)
    REJECTED_REQUESTS.labels(reason="invalid").inc()
    errors = exc.errors()
    # Each error's `input` is left out: it echoes the client's body back (up to the size
    # limit), and a body with `NaN`/`Infinity` (Python's json reads them) cannot be
    # rendered as JSON at all, which turned a bad request into a 500.
    detail = [{k: v for k, v in e.items() if k != "input"} for e in errors]
    return JSONResponse(
        {"error": "; ".join(_describe(e) for e in errors), "detail": jsonable_encoder(detail)},
        status_code=422,
    )


def _describe(error: Mapping[str, Any]) -> str:
    # "body.text" reads better as "text": the client knows it posted a body.
    where = ".".join(str(p) for p in error.get("loc", ()) if p not in ("body", "path"))
    message = str(error.get("msg", "invalid")).removeprefix("Value error, ")
    return f"{where}: {message}" if where else message
