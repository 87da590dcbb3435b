"""A fake in-app backend that receives clawdesk's signed reply callbacks and checks
them as a tenant's backend would (its own HMAC code, not clawdesk's)."""

from __future__ import annotations

import hashlib
import hmac
import json
import time
from collections import deque

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse

from .server import Recorded


def backend_verifies(secret: str, timestamp: str, signature: str, body: bytes) -> bool:
    """What the documentation tells an app backend to do with a callback."""
    if abs(time.time() - int(timestamp)) > 300:
        return False
    mac = hmac.new(secret.encode(), timestamp.encode() + b"." + body, hashlib.sha256)
    return hmac.compare_digest(signature, "sha256=" + mac.hexdigest())


class FakeAppBackend:
    """`POST /clawdesk/replies`: 401 on a bad signature, 429 on demand, else an id."""

    def __init__(self, secret: str) -> None:
        self.secret = secret
        self.received: list[Recorded] = []
        self.refused = 0
        self.throttles: deque[int] = deque()
        self.app = FastAPI()
        self.app.post("/clawdesk/replies")(self._reply)

    def throttle_next(self, retry_after: int = 1) -> None:
        self.throttles.append(retry_after)

    async def _reply(self, request: Request) -> JSONResponse:
        body = await request.body()
        timestamp = request.headers.get("x-clawdesk-timestamp", "0")
        signature = request.headers.get("x-clawdesk-signature", "")
        if not backend_verifies(self.secret, timestamp, signature, body):
            self.refused += 1
            return JSONResponse({"error": "bad signature"}, 401)
        if self.throttles:
            wait = self.throttles.popleft()
            return JSONResponse({"error": "slow down"}, 429, headers={"Retry-After": str(wait)})
        self.received.append(
            Recorded("/clawdesk/replies", dict(request.headers), body, json.loads(body))
        )
        return JSONResponse({"id": f"app-{len(self.received)}"})
