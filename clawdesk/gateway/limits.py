"""A request-body size limit, the ASGI twin of nginx's `client_max_body_size 10M`."""

from __future__ import annotations

import json
import logging

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from clawdesk.gateway.metrics import REJECTED_REQUESTS

log = logging.getLogger(__name__)

MAX_BODY_BYTES = 10 * 1024 * 1024  # nginx's "10M" is 10 MiB


class BodyTooLarge(Exception):
    """Raised into the app from `receive` once the streamed body passes the limit."""


class BodySizeLimit:
    """Answer 413 to any HTTP request whose body is larger than `max_bytes`.

    The declared Content-Length is checked before the app runs; a body without one
    (chunked) is counted as it streams, because a client can lie or not declare it.
    The connection is not closed on purpose: uvicorn discards the unread rest of the
    body (like nginx's lingering close), so a client that reads its response only
    after uploading (fetch, httpx) still sees the 413 instead of a reset.
    """

    def __init__(self, app: ASGIApp, max_bytes: int = MAX_BODY_BYTES) -> None:
        self.app = app
        self.max_bytes = max_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        if _declared_length(scope) > self.max_bytes:
            await self._refuse(scope, send)
            return
        await self._stream_with_limit(scope, receive, send)

    async def _stream_with_limit(self, scope: Scope, receive: Receive, send: Send) -> None:
        received = 0
        exceeded = False
        started = False

        async def counting_receive() -> Message:
            nonlocal received, exceeded
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > self.max_bytes:
                    exceeded = True
                    raise BodyTooLarge
            return message

        async def guarded_send(message: Message) -> None:
            nonlocal started
            # Once over the limit the 413 is ours to send; whatever error response the
            # app makes of the interrupted read is dropped.
            if exceeded:
                return
            started = started or message["type"] == "http.response.start"
            await send(message)

        try:
            await self.app(scope, counting_receive, guarded_send)
        except BodyTooLarge:
            pass
        if exceeded and not started:
            await self._refuse(scope, send)

    async def _refuse(self, scope: Scope, send: Send) -> None:
        REJECTED_REQUESTS.labels(reason="too_large").inc()
        log.warning(
            "request body too large",
            extra={"path": scope.get("path"), "max_bytes": self.max_bytes},
        )
        body = json.dumps({"error": f"request body over {self.max_bytes} bytes"}).encode()
        await send(
            {
                "type": "http.response.start",
                "status": 413,
                "headers": [
                    (b"content-type", b"application/json"),
                    (b"content-length", str(len(body)).encode()),
                ],
            }
        )
        await send({"type": "http.response.body", "body": body})


def _declared_length(scope: Scope) -> int:
    for name, value in scope.get("headers", []):
        if name == b"content-length":
            try:
                return int(value)
            except ValueError:
                return 0  # not a number: let the streamed count decide
    return 0
