"""In-process fake providers for the soak: Telegram's Bot API, WhatsApp's Cloud API, an
in-app backend's callback receiver and (optionally) an OpenAI-compatible LLM.

Every send is recorded with what identifies it (our reply id where the provider carries
one, the chat, the text) and how it was answered, so the verifier can count lost and
duplicated replies. `fail(kind, seconds)` switches them into a fault: 429 with
Retry-After, 5xx, or a timeout (the response is held past the client's timeout, but
the message counts as received: a real provider that is slow to answer usually did
deliver it, and resending it would be a duplicate).
"""

from __future__ import annotations

import asyncio
import json
import socket
import threading
import time
from collections.abc import Awaitable, Callable, MutableMapping
from dataclasses import dataclass, field
from typing import Any

import uvicorn
from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse, Response

from clawdesk.llm.echo_server import create_app as create_echo_app

TELEGRAM_TOKEN = "424242:soak-bot-token"
WHATSAPP_TOKEN = "soak-graph-token"
PROVIDER_FAULTS = ("429", "5xx", "timeout")
# Answers that mean the provider has the message (a held response still delivered it).
DELIVERED = frozenset({"ok", "timeout"})
REPEAT = "repeat"  # an in-app callback repeated with a key already taken: dropped

Scope = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[MutableMapping[str, Any]]]
Send = Callable[[MutableMapping[str, Any]], Awaitable[None]]


@dataclass(frozen=True)
class ProviderSend:
    """One send a fake provider received."""

    channel: str  # telegram / whatsapp / inapp
    chat: str  # Telegram chat id, WhatsApp wa_id, in-app conversation id
    reply_id: str | None  # ours, where the provider carries it (not Telegram)
    text: str
    at: float  # epoch seconds
    answer: str  # ok / 429 / 5xx / timeout

    @property
    def delivered(self) -> bool:
        """Whether the provider has the message (whatever it answered)."""
        return self.answer in DELIVERED


@dataclass
class FaultSwitch:
    """A fault mode that ends by itself (set from the fault thread, read by the fakes)."""

    kind: str | None = None
    until: float = 0.0

    def set(self, kind: str, seconds: float) -> None:
        """Be in `kind` for `seconds`."""
        self.kind, self.until = kind, time.monotonic() + seconds

    def current(self) -> str | None:
        """The fault now in force, if any."""
        return self.kind if self.kind and time.monotonic() < self.until else None


@dataclass
class FakeProviders:
    """The fakes on one loopback port; `sends` is every send they received, in order."""

    hold_s: float = 3.0  # a timeout: answer this late (above the client's http timeout)
    sends: list[ProviderSend] = field(default_factory=list)
    switch: FaultSwitch = field(default_factory=FaultSwitch)
    llm_switch: FaultSwitch = field(default_factory=FaultSwitch)
    llm_calls: int = 0
    # In-app Idempotency-Key → the id answered, so a repeat gets the same answer.
    inapp_keys: dict[str, str] = field(default_factory=dict)
    url: str = ""
    _server: uvicorn.Server | None = field(default=None, repr=False)
    _thread: threading.Thread | None = field(default=None, repr=False)

    def fail(self, kind: str, seconds: float) -> None:
        """Answer every send with `kind` (429 / 5xx / timeout) for `seconds`."""
        if kind not in PROVIDER_FAULTS:
            raise ValueError(f"unknown provider fault {kind!r}")
        self.switch.set(kind, seconds)

    def fail_llm(self, seconds: float) -> None:
        """Answer every LLM call with a 500 for `seconds`."""
        self.llm_switch.set("5xx", seconds)

    def app(self) -> FastAPI:
        """The ASGI app of every fake."""
        app = FastAPI(title="clawdesk soak providers")
        app.post("/telegram/bot{token}/sendMessage")(self._telegram)
        app.post("/whatsapp/{phone_number_id}/messages")(self._whatsapp)
        app.post("/inapp/replies")(self._inapp)
        app.mount("/llm", self._failing_llm(create_echo_app()))
        return app

    def start(self) -> FakeProviders:
        """Serve on 127.0.0.1:<free port> in a background thread."""
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind(("127.0.0.1", 0))  # bound before the thread starts: no port race
        self.url = f"http://127.0.0.1:{sock.getsockname()[1]}"
        config = uvicorn.Config(self.app(), log_level="warning", lifespan="off", access_log=False)
        self._server = uvicorn.Server(config)
        self._thread = threading.Thread(
            target=self._server.run, kwargs={"sockets": [sock]}, daemon=True
        )
        self._thread.start()
        deadline = time.monotonic() + 10
        while not self._server.started:
            if time.monotonic() > deadline or not self._thread.is_alive():
                raise RuntimeError("the fake providers did not start")
            time.sleep(0.01)
        return self

    def stop(self) -> None:
        """Stop serving."""
        if self._server is not None and self._thread is not None:
            self._server.should_exit = True
            self._thread.join(timeout=10)

    def env(self) -> dict[str, str]:
        """CLAWDESK_* settings pointing the senders at these fakes."""
        return {
            "CLAWDESK_TELEGRAM_BOT_TOKEN": TELEGRAM_TOKEN,
            "CLAWDESK_TELEGRAM_API_BASE": f"{self.url}/telegram",
            "CLAWDESK_WHATSAPP_TOKEN": WHATSAPP_TOKEN,
            "CLAWDESK_WHATSAPP_API_BASE": f"{self.url}/whatsapp",
            "CLAWDESK_INAPP_CALLBACK_URLS": json.dumps({"demo": f"{self.url}/inapp/replies"}),
            # The fake backend listens on loopback.
            "CLAWDESK_INAPP_ALLOW_PRIVATE_CALLBACKS": "true",
        }

    def llm_env(self) -> dict[str, str]:
        """Settings that turn LLM mode on against the fake (an echo model)."""
        return {"CLAWDESK_LLM_BASE_URL": f"{self.url}/llm/v1", "CLAWDESK_LLM_API_KEY": "soak"}

    async def _answer(self, channel: str, chat: str, reply_id: str | None, text: str) -> str:
        """Record the send; wait if a timeout is in force; the answer to give."""
        answer = self.switch.current() or "ok"
        self.sends.append(ProviderSend(channel, chat, reply_id, text, time.time(), answer))
        if answer == "timeout":
            await asyncio.sleep(self.hold_s)
        return answer

    async def _telegram(self, token: str, request: Request) -> Response:
        body = await request.json()
        if token != TELEGRAM_TOKEN:
            return JSONResponse(
                {"ok": False, "error_code": 401, "description": "Unauthorized"}, 401
            )
        answer = await self._answer(
            "telegram", str(body.get("chat_id")), None, body.get("text", "")
        )
        if answer == "429":
            return JSONResponse(
                {
                    "ok": False,
                    "error_code": 429,
                    "description": "Too Many Requests: retry after 1",
                    "parameters": {"retry_after": 1},
                },
                429,
            )
        if answer == "5xx":
            return Response("<html>Bad Gateway</html>", 502, media_type="text/html")
        result = {"message_id": len(self.sends), "date": int(time.time()), "text": body["text"]}
        result["chat"] = {"id": int(body["chat_id"]), "type": "private"}
        return JSONResponse({"ok": True, "result": result})

    async def _whatsapp(self, phone_number_id: str, request: Request) -> Response:
        body = await request.json()
        if request.headers.get("authorization") != f"Bearer {WHATSAPP_TOKEN}":
            return JSONResponse({"error": {"message": "Invalid OAuth access token"}}, 401)
        text = (body.get("text") or {}).get("body", "")
        reply_id = body.get("biz_opaque_callback_data")
        answer = await self._answer("whatsapp", str(body.get("to")), reply_id, text)
        if answer == "429":
            error = {"message": "Rate limit hit", "code": 130429, "type": "OAuthException"}
            return JSONResponse({"error": error}, 429, headers={"Retry-After": "1"})
        if answer == "5xx":
            return JSONResponse({"error": {"message": "Service unavailable", "code": 2}}, 503)
        wamid = f"wamid.SOAKOUT{len(self.sends)}"
        return JSONResponse(
            {
                "messaging_product": "whatsapp",
                "contacts": [{"input": body.get("to"), "wa_id": body.get("to")}],
                "messages": [{"id": wamid}],
            }
        )

    async def _inapp(self, request: Request) -> Response:
        body = await request.json()
        key = request.headers.get("idempotency-key")
        if key and key in self.inapp_keys:
            # A backend honouring the documented key takes a repeat as already done.
            self.sends.append(
                ProviderSend(
                    "inapp", str(body.get("conversation_id")), key, "", time.time(), REPEAT
                )
            )
            return JSONResponse({"id": self.inapp_keys[key]})
        answer = await self._answer(
            "inapp", str(body.get("conversation_id")), body.get("reply_id"), body.get("text", "")
        )
        if answer == "429":
            return JSONResponse({"error": "slow down"}, 429, headers={"Retry-After": "1"})
        if answer == "5xx":
            return JSONResponse({"error": "backend down"}, 503)
        provider_id = f"app-{len(self.sends)}"
        if key and answer in DELIVERED:
            self.inapp_keys[key] = provider_id
        return JSONResponse({"id": provider_id})

    def _failing_llm(self, app: Callable[[Scope, Receive, Send], Awaitable[None]]) -> Any:
        """The echo LLM, answering 500 while its fault is in force."""

        async def failing(scope: Scope, receive: Receive, send: Send) -> None:
            if scope["type"] == "http":
                self.llm_calls += 1
                if self.llm_switch.current():
                    await JSONResponse(
                        {"error": {"message": "overloaded", "type": "server_error"}}, 500
                    )(scope, receive, send)
                    return
            await app(scope, receive, send)

        return failing
