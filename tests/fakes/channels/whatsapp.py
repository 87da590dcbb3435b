"""A fake WhatsApp Cloud API (`POST /{phone_number_id}/messages`) and the notifications
Meta sends, signed the way Meta signs them."""

from __future__ import annotations

import hashlib
import hmac
import json
import time
from collections import deque
from typing import Any

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse, Response

from .server import Recorded

PHONE_NUMBER_ID = "106540352242922"
CUSTOMER = "4915112345678"


def _now() -> str:
    # Meta stamps a message with when the customer sent it: the window opens then.
    return str(int(time.time()))


def image_message(
    caption: str | None = None,
    *,
    media_id: str = "1166231088291398",
    message_id: str = "wamid.IMG1",
    mime_type: str = "image/jpeg",
) -> dict:
    """An image message (the media id is fetched through `GET /{media-id}`)."""
    image: dict[str, Any] = {"id": media_id, "mime_type": mime_type, "sha256": "x"}
    if caption is not None:
        image["caption"] = caption
    return {
        "from": CUSTOMER,
        "id": message_id,
        "timestamp": _now(),
        "type": "image",
        "image": image,
    }


def meta_signature(app_secret: str, body: bytes) -> str:
    """X-Hub-Signature-256 as Meta computes it."""
    return "sha256=" + hmac.new(app_secret.encode(), body, hashlib.sha256).hexdigest()


def text_message(body: str, *, message_id: str = "wamid.IN1", sender: str = CUSTOMER) -> dict:
    return {
        "from": sender,
        "id": message_id,
        "timestamp": _now(),
        "type": "text",
        "text": {"body": body},
    }


def button_reply(choice_id: str, title: str, *, message_id: str = "wamid.IN2") -> dict:
    return {
        "from": CUSTOMER,
        "id": message_id,
        "timestamp": _now(),
        "type": "interactive",
        "interactive": {"type": "button_reply", "button_reply": {"id": choice_id, "title": title}},
    }


def list_reply(choice_id: str, title: str, *, message_id: str = "wamid.IN3") -> dict:
    return {
        "from": CUSTOMER,
        "id": message_id,
        "timestamp": _now(),
        "type": "interactive",
        "interactive": {
            "type": "list_reply",
            "list_reply": {"id": choice_id, "title": title, "description": "d"},
        },
    }


def status(state: str, *, message_id: str = "wamid.OUT1", callback: str | None = "r-evt1") -> dict:
    item: dict[str, Any] = {
        "id": message_id,
        "status": state,
        "timestamp": "1700000100",
        "recipient_id": CUSTOMER,
    }
    if callback:
        item["biz_opaque_callback_data"] = callback
    if state == "failed":
        item["errors"] = [{"code": 131047, "title": "Re-engagement message"}]
    return item


def notification(
    messages: list[dict] | None = None,
    statuses: list[dict] | None = None,
    *,
    phone_number_id: str = PHONE_NUMBER_ID,
) -> dict:
    """A webhook body as the Cloud API POSTs it."""
    value: dict[str, Any] = {
        "messaging_product": "whatsapp",
        "metadata": {"display_phone_number": "15550001111", "phone_number_id": phone_number_id},
    }
    if messages:
        value["contacts"] = [{"profile": {"name": "Ana"}, "wa_id": CUSTOMER}]
        value["messages"] = messages
    if statuses:
        value["statuses"] = statuses
    return {
        "object": "whatsapp_business_account",
        "entry": [{"id": "WABA1", "changes": [{"field": "messages", "value": value}]}],
    }


def encode(payload: dict) -> bytes:
    return json.dumps(payload).encode()


class FakeGraphApi:
    """`POST /{phone_number_id}/messages`: checks the bearer token, answers a wamid."""

    def __init__(self, token: str) -> None:
        self.token = token
        self.sent: list[Recorded] = []
        self.answers: deque[tuple[int, dict[str, Any], dict[str, str]]] = deque()
        self.app = FastAPI()
        self.app.post("/{phone_number_id}/messages")(self._messages)
        self.app.post("/{phone_number_id}/media")(self._upload)
        self.uploads: list[dict[str, Any]] = []  # media uploads: fields and the file
        self.closed_windows: set[str] = set()
        self.media: dict[str, tuple[bytes, str]] = {}  # media id → (bytes, declared type)
        self.downloads: list[str] = []
        self.app.get("/media-download/{media_id}")(self._download)
        self.app.get("/{media_id}")(self._media_url)

    def answer_next(self, status: int, body: dict[str, Any], headers: dict[str, str]) -> None:
        """Answer the next call with this instead of a success."""
        self.answers.append((status, body, headers))

    def throttle_next(self, retry_after: int = 1) -> None:
        self.answer_next(
            429,
            {"error": {"message": "Rate limit hit", "code": 130429, "type": "OAuthException"}},
            {"Retry-After": str(retry_after)},
        )

    async def _media_url(self, media_id: str, request: Request) -> JSONResponse:
        """`GET /{media-id}`: a short-lived URL to the file, its type and size."""
        if request.headers.get("authorization") != f"Bearer {self.token}":
            return JSONResponse(
                {"error": {"message": "Invalid OAuth access token", "code": 190}}, 401
            )
        if media_id not in self.media:
            return JSONResponse(
                {"error": {"message": "Unsupported get request.", "code": 100}}, 400
            )
        data, mime = self.media[media_id]
        return JSONResponse(
            {
                "messaging_product": "whatsapp",
                "url": f"{str(request.base_url).rstrip('/')}/media-download/{media_id}",
                "mime_type": mime,
                "sha256": hashlib.sha256(data).hexdigest(),
                "file_size": len(data),
                "id": media_id,
            }
        )

    async def _download(self, media_id: str, request: Request) -> Response:
        if request.headers.get("authorization") != f"Bearer {self.token}":
            return JSONResponse(
                {"error": {"message": "Invalid OAuth access token", "code": 190}}, 401
            )
        self.downloads.append(media_id)
        data, mime = self.media[media_id]
        return Response(data, media_type=mime)

    async def _upload(self, phone_number_id: str, request: Request) -> JSONResponse:
        """`POST /{phone-number-id}/media` (multipart: messaging_product, type, file):
        the media id to send the file by."""
        if request.headers.get("authorization") != f"Bearer {self.token}":
            return JSONResponse(
                {"error": {"message": "Invalid OAuth access token", "code": 190}}, 401
            )
        form = await request.form()
        file = form.get("file")
        data = await file.read() if file is not None and not isinstance(file, str) else b""
        fields = {k: v for k, v in form.items() if isinstance(v, str)}
        if fields.get("messaging_product") != "whatsapp" or not data:
            return JSONResponse(
                {"error": {"message": "(#100) Param file is required", "code": 100}}, 400
            )
        media_id = f"media-out-{len(self.uploads) + 1}"
        self.uploads.append({**fields, "file": data, "id": media_id})
        self.media[media_id] = (data, fields.get("type", ""))
        return JSONResponse({"id": media_id})

    def close_window(self, wa_id: str) -> None:
        """Refuse free-form messages to the customer as Meta does 24 hours after they
        last wrote (error 131047); templates still go."""
        self.closed_windows.add(wa_id)

    async def _messages(self, phone_number_id: str, request: Request) -> JSONResponse:
        body = await request.body()
        self.sent.append(
            Recorded(f"/{phone_number_id}/messages", dict(request.headers), body, json.loads(body))
        )
        if request.headers.get("authorization") != f"Bearer {self.token}":
            return JSONResponse(
                {"error": {"message": "Invalid OAuth access token", "code": 190}}, 401
            )
        if self.answers:
            status, answer, headers = self.answers.popleft()
            return JSONResponse(answer, status, headers=headers)
        sent = json.loads(body)
        if sent.get("type") != "template" and sent.get("to") in self.closed_windows:
            return JSONResponse(
                {
                    "error": {
                        "message": "(#131047) Re-engagement message",
                        "type": "OAuthException",
                        "code": 131047,
                        "error_data": {
                            "details": "Message failed to send because more than 24 hours "
                            "have passed since the customer last replied to this number."
                        },
                    }
                },
                400,
            )
        return JSONResponse(
            {
                "messaging_product": "whatsapp",
                "contacts": [{"input": sent["to"], "wa_id": sent["to"]}],
                "messages": [{"id": f"wamid.OUT{len(self.sent)}"}],
            }
        )
