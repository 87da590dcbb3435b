"""A fake Telegram Bot API (`sendMessage`, `getUpdates`) and the Updates it delivers."""

from __future__ import annotations

import asyncio
import json
from collections import deque
from typing import Any

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse

from .server import Recorded

CHAT_ID = 4242


def text_update(text: str, *, update_id: int = 10001, message_id: int = 7) -> dict:
    return {
        "update_id": update_id,
        "message": {
            "message_id": message_id,
            "date": 1700000000,
            "chat": {"id": CHAT_ID, "type": "private", "first_name": "Li"},
            "from": {"id": CHAT_ID, "is_bot": False, "first_name": "Li", "language_code": "zh"},
            "text": text,
        },
    }


def sticker_update(*, update_id: int = 10002) -> dict:
    return {
        "update_id": update_id,
        "message": {
            "message_id": 8,
            "date": 1700000000,
            "chat": {"id": CHAT_ID, "type": "private"},
            "from": {"id": CHAT_ID, "is_bot": False},
            "sticker": {"file_id": "x"},
        },
    }


class FakeBotApi:
    """`/bot<token>/<method>`: 401 for another token, 429 with retry_after on demand."""

    def __init__(self, token: str) -> None:
        self.token = token
        self.sent: list[Recorded] = []
        self.polls: list[dict[str, str]] = []
        self.updates: list[dict] = []
        self.throttles: deque[int] = deque()
        self.outages: deque[int] = deque()
        self.delay_s = 0.0  # how long sendMessage takes (to see concurrency, or time out)
        self.in_flight = 0
        self.max_in_flight = 0
        self.app = FastAPI()
        self.app.post("/bot{token}/sendMessage")(self._send_message)
        self.app.get("/bot{token}/getUpdates")(self._get_updates)

    def throttle_next(self, retry_after: int = 1) -> None:
        self.throttles.append(retry_after)

    def fail_next(self, status: int = 502) -> None:
        """Answer the next call like a proxy in front of a down Bot API (HTML, no JSON)."""
        self.outages.append(status)

    def _refusal(self, token: str) -> JSONResponse | None:
        if token != self.token:
            return JSONResponse(
                {"ok": False, "error_code": 401, "description": "Unauthorized"}, 401
            )
        if self.outages:
            return JSONResponse("<html>Bad Gateway</html>", self.outages.popleft())
        if self.throttles:
            wait = self.throttles.popleft()
            return JSONResponse(
                {
                    "ok": False,
                    "error_code": 429,
                    "description": f"Too Many Requests: retry after {wait}",
                    "parameters": {"retry_after": wait},
                },
                429,
            )
        return None

    async def _send_message(self, token: str, request: Request) -> JSONResponse:
        body = await request.body()
        self.sent.append(Recorded("/sendMessage", dict(request.headers), body, json.loads(body)))
        self.in_flight += 1
        self.max_in_flight = max(self.max_in_flight, self.in_flight)
        try:
            await asyncio.sleep(self.delay_s)
        finally:
            self.in_flight -= 1
        refusal = self._refusal(token)
        if refusal is not None:
            return refusal
        sent = json.loads(body)
        if str(sent.get("chat_id")) != str(CHAT_ID):
            return JSONResponse(
                {"ok": False, "error_code": 400, "description": "Bad Request: chat not found"}, 400
            )
        result: dict[str, Any] = {
            "message_id": 100 + len(self.sent),
            "date": 1700000000,
            "chat": {"id": CHAT_ID, "type": "private"},
            "text": sent["text"],
        }
        return JSONResponse({"ok": True, "result": result})

    async def _get_updates(self, token: str, request: Request) -> JSONResponse:
        query = dict(request.query_params)
        self.polls.append(query)
        refusal = self._refusal(token)
        if refusal is not None:
            return refusal
        offset = int(query.get("offset", "0"))
        # Confirmed updates (below the offset) are forgotten, as Telegram does.
        self.updates = [u for u in self.updates if u["update_id"] >= offset]
        if not self.updates:
            await asyncio.sleep(0.05)  # a (very) short long-poll
        return JSONResponse({"ok": True, "result": self.updates[:100]})
