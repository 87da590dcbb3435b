"""A fake Telegram Bot API (`sendMessage`, `getUpdates`) and the Updates it delivers."""

from __future__ import annotations

import asyncio
import json
from collections import deque
from typing import Any

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse, Response

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


GROUP_ID = -1001234567890
MEMBER_ID = 5151
BOT_USERNAME = "clawshop_bot"


def _user(user_id: int = CHAT_ID, language: str = "zh") -> dict:
    return {"id": user_id, "is_bot": False, "first_name": "Li", "language_code": language}


def command_update(command: str, *, update_id: int = 10003, message_id: int = 9) -> dict:
    """A bot command as Telegram sends it: the text and its `bot_command` entity."""
    name = command.split()[0]
    return {
        "update_id": update_id,
        "message": {
            "message_id": message_id,
            "date": 1700000000,
            "chat": {"id": CHAT_ID, "type": "private"},
            "from": _user(language="en"),
            "text": command,
            "entities": [{"type": "bot_command", "offset": 0, "length": len(name)}],
        },
    }


def group_update(
    text: str,
    *,
    user_id: int = MEMBER_ID,
    mention: bool = False,
    reply_to_bot: bool = False,
    update_id: int = 10004,
    message_id: int = 21,
) -> dict:
    """A group member's message, mentioning the bot or replying to one of its messages."""
    entities = []
    if mention:
        text = f"@{BOT_USERNAME} {text}"
        entities.append({"type": "mention", "offset": 0, "length": len(BOT_USERNAME) + 1})
    message: dict = {
        "message_id": message_id,
        "date": 1700000000,
        "chat": {"id": GROUP_ID, "type": "supergroup", "title": "Shop fans"},
        "from": _user(user_id, "en"),
        "text": text,
        "entities": entities,
    }
    if reply_to_bot:
        message["reply_to_message"] = {
            "message_id": 20,
            "date": 1699999990,
            "chat": {"id": GROUP_ID, "type": "supergroup"},
            "from": {"id": 123456, "is_bot": True, "first_name": "Shop", "username": BOT_USERNAME},
            "text": "Which order?",
        }
    return {"update_id": update_id, "message": message}


def callback_update(
    data: str, *, query_id: str = "4382bfdwdsb323b2d9", update_id: int = 10005
) -> dict:
    """A pressed inline keyboard button under one of the bot's messages."""
    return {
        "update_id": update_id,
        "callback_query": {
            "id": query_id,
            "from": _user(language="en"),
            "chat_instance": "-59874",
            "message": {
                "message_id": 30,
                "date": 1700000000,
                "chat": {"id": CHAT_ID, "type": "private"},
                "from": {"id": 123456, "is_bot": True, "first_name": "Shop"},
                "text": "What can I help with?",
            },
            "data": data,
        },
    }


def edited_update(text: str, *, message_id: int = 7, edit_date: int = 1700000060) -> dict:
    """The customer edited message `message_id`."""
    return {
        "update_id": 10006,
        "edited_message": {
            "message_id": message_id,
            "date": 1700000000,
            "edit_date": edit_date,
            "chat": {"id": CHAT_ID, "type": "private"},
            "from": _user(),
            "text": text,
        },
    }


def photo_update(caption: str | None = None, *, file_id: str = "AgACAgIAAxk-photo") -> dict:
    """A photo (three sizes, as Telegram sends them) with or without a caption."""
    message: dict = {
        "message_id": 40,
        "date": 1700000000,
        "chat": {"id": CHAT_ID, "type": "private"},
        "from": _user(language="en"),
        "photo": [
            {
                "file_id": f"{file_id}-s",
                "file_unique_id": "s",
                "width": 90,
                "height": 67,
                "file_size": 1200,
            },
            {
                "file_id": f"{file_id}-m",
                "file_unique_id": "m",
                "width": 320,
                "height": 240,
                "file_size": 15000,
            },
            {
                "file_id": file_id,
                "file_unique_id": "x",
                "width": 800,
                "height": 600,
                "file_size": 64000,
            },
        ],
    }
    if caption is not None:
        message["caption"] = caption
    return {"update_id": 10007, "message": message}


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
        self.app.post("/bot{token}/sendPhoto")(self._send_photo)
        self.photos: list[dict[str, Any]] = []  # sendPhoto calls: form fields and the file
        self.app.get("/bot{token}/getUpdates")(self._get_updates)
        self.app.post("/bot{token}/answerCallbackQuery")(self._answer_callback)
        self.app.post("/bot{token}/getFile")(self._get_file)
        self.app.get("/file/bot{token}/{file_path:path}")(self._download)
        self.files: dict[str, bytes] = {}  # file_id → the file's bytes
        self.downloads: list[str] = []
        self.callbacks: list[dict[str, Any]] = []
        self.answered_callbacks: set[str] = set()

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
        if str(sent.get("chat_id")) not in (str(CHAT_ID), str(GROUP_ID)):
            return JSONResponse(
                {"ok": False, "error_code": 400, "description": "Bad Request: chat not found"}, 400
            )
        result: dict[str, Any] = {
            "message_id": 100 + len(self.sent),
            "date": 1700000000,
            "chat": {"id": int(sent["chat_id"]), "type": "private"},
            "text": sent["text"],
        }
        return JSONResponse({"ok": True, "result": result})

    async def _send_photo(self, token: str, request: Request) -> JSONResponse:
        """`sendPhoto` with the photo uploaded as multipart/form-data (Bot API: "a new
        photo using multipart/form-data"); caption up to 1024 characters."""
        form = await request.form()
        photo = form.get("photo")
        fields = {k: v for k, v in form.items() if isinstance(v, str)}
        data = await photo.read() if photo is not None and not isinstance(photo, str) else b""
        self.photos.append(
            {**fields, "photo": data, "content_type": getattr(photo, "content_type", "")}
        )
        refusal = self._refusal(token)
        if refusal is not None:
            return refusal
        if not data:
            return JSONResponse(
                {
                    "ok": False,
                    "error_code": 400,
                    "description": "Bad Request: there is no photo in the request",
                },
                400,
            )
        if len(fields.get("caption", "")) > 1024:
            return JSONResponse(
                {
                    "ok": False,
                    "error_code": 400,
                    "description": "Bad Request: message caption is too long",
                },
                400,
            )
        result = {
            "message_id": 500 + len(self.photos),
            "date": 1700000000,
            "chat": {"id": int(fields["chat_id"]), "type": "private"},
            "photo": [{"file_id": f"sent-photo-{len(self.photos)}", "file_size": len(data)}],
        }
        return JSONResponse({"ok": True, "result": result})

    async def _get_file(self, token: str, request: Request) -> JSONResponse:
        """`getFile`: the file's path for download; bots may not fetch over 20 MB."""
        refusal = self._refusal(token)
        if refusal is not None:
            return refusal
        file_id = str(json.loads(await request.body()).get("file_id", ""))
        data = self.files.get(file_id)
        if data is None:
            return JSONResponse(
                {"ok": False, "error_code": 400, "description": "Bad Request: invalid file_id"},
                400,
            )
        if len(data) > 20 * 1024 * 1024:
            return JSONResponse(
                {"ok": False, "error_code": 400, "description": "Bad Request: file is too big"},
                400,
            )
        path = f"photos/file_{list(self.files).index(file_id)}.jpg"
        result = {
            "file_id": file_id,
            "file_unique_id": "u",
            "file_size": len(data),
            "file_path": path,
        }
        return JSONResponse({"ok": True, "result": result})

    async def _download(self, token: str, file_path: str) -> Response:
        if token != self.token:
            return JSONResponse(
                {"ok": False, "error_code": 401, "description": "Unauthorized"}, 401
            )
        self.downloads.append(file_path)
        index = int(file_path.rsplit("_", 1)[-1].split(".")[0])
        # Telegram's file server says octet-stream whatever the file is.
        return Response(list(self.files.values())[index], media_type="application/octet-stream")

    async def _answer_callback(self, token: str, request: Request) -> JSONResponse:
        """Answer a callback query once; a second answer is refused as Telegram does."""
        sent = json.loads(await request.body())
        self.callbacks.append(sent)
        refusal = self._refusal(token)
        if refusal is not None:
            return refusal
        query_id = str(sent.get("callback_query_id", ""))
        if not query_id or query_id in self.answered_callbacks:
            return JSONResponse(
                {
                    "ok": False,
                    "error_code": 400,
                    "description": "Bad Request: query is too old and response timeout "
                    "expired or query ID is invalid",
                },
                400,
            )
        self.answered_callbacks.add(query_id)
        return JSONResponse({"ok": True, "result": True})

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
