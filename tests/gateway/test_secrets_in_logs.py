"""No secret reaches the log: the gateway runs under uvicorn with the process's JSON
logging (access log included), is called on its authenticated paths with known secret
values, right and wrong, and the captured output must contain none of them."""

from __future__ import annotations

import asyncio
import io
import json
import logging
import socket
import threading
import time
from collections.abc import Iterator

import httpx
import pytest
import uvicorn
from websockets.asyncio.client import connect

from clawdesk.gateway.limits import RateLimiter
from clawdesk.ops.logs import json_handler
from tests.connectors.conftest import (
    EMAIL_SECRET,
    INAPP_KEYS,
    INAPP_SECRET,
    TELEGRAM_SECRET,
    TELEGRAM_TOKEN,
    WECHAT_SECRET,
    WECHAT_TOKEN,
    WHATSAPP_SECRET,
    WHATSAPP_TOKEN,
    WHATSAPP_VERIFY,
    gateway_app,
    make_channels,
)
from tests.fakes.channels import telegram as tg
from tests.gateway.conftest import TOKEN_SECRET

REDIS_PASSWORD = "redis-password-7c1f"
DATABASE_PASSWORD = "db-password-93ab"
INBOX_KEY = "cdk_inbox-key-that-is-not-stored-anywhere"


@pytest.fixture
def captured() -> Iterator[io.StringIO]:
    """Everything the process's log handler writes, at INFO (uvicorn's access log too)."""
    out = io.StringIO()
    handler = json_handler()
    assert isinstance(handler, logging.StreamHandler)
    handler.setStream(out)
    root = logging.getLogger()
    level = root.level
    root.addHandler(handler)
    root.setLevel(logging.INFO)
    try:
        yield out
    finally:
        root.removeHandler(handler)
        root.setLevel(level)


@pytest.fixture
def gateway_url() -> Iterator[str]:
    """The gateway on fakes, served by uvicorn configured as `clawdesk gateway` does."""
    app, *_ = gateway_app(make_channels())
    # Unreachable (port 1): every check fails open and logs why, with the URL at hand.
    app.state.rate_limiter = RateLimiter(
        f"redis://:{REDIS_PASSWORD}@127.0.0.1:1/0", customer="30/minute", tenant="600/minute"
    )
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    server = uvicorn.Server(uvicorn.Config(app, log_config=None, lifespan="on"))
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    deadline = time.monotonic() + 10
    while not server.started and time.monotonic() < deadline:
        time.sleep(0.02)
    yield f"http://127.0.0.1:{sock.getsockname()[1]}"
    server.should_exit = True
    thread.join(10)


async def exercise(base: str) -> list[str]:
    """Call each authenticated path with its secret (and with wrong ones); return the
    secrets the gateway handed out on the way (the web token)."""
    async with httpx.AsyncClient(base_url=base, timeout=10) as client:
        verify = {"hub.mode": "subscribe", "hub.challenge": "42"}
        ok = await client.get(
            "/webhooks/whatsapp", params={**verify, "hub.verify_token": WHATSAPP_VERIFY}
        )
        assert ok.text == "42"
        await client.get("/webhooks/whatsapp", params={**verify, "hub.verify_token": "wrong"})
        for secret in (TELEGRAM_SECRET, "wrong-secret"):
            await client.post(
                "/webhooks/telegram",
                json=tg.text_update("hi"),
                headers={"X-Telegram-Bot-Api-Secret-Token": secret},
            )
        message = {"customer_id": "u-1", "text": "hi", "client_message_id": "m-1"}
        for key in (INAPP_KEYS["acme"], "wrong-key"):
            await client.post("/api/inapp/messages", json=message, headers={"X-Api-Key": key})
        await client.get("/api/inbox/me", headers={"Authorization": "Bearer not-" + INBOX_KEY})
        posted = await client.post(
            "/api/web/messages", json={"text": "hi", "client_message_id": "w-1"}
        )
        assert posted.status_code == 202, posted.text
        conversation, token = posted.json()["conversation_id"], posted.json()["token"]
        bearer = {"Authorization": f"Bearer {token}"}
        assert (
            await client.get(f"/api/web/conversations/{conversation}/messages", headers=bearer)
        ).status_code == 200
    ws = base.replace("http://", "ws://") + f"/ws/{conversation}?token={token}"
    async with connect(ws):
        pass
    return [token]


async def test_no_secret_appears_in_the_log(captured: io.StringIO, gateway_url: str) -> None:
    handed_out = await exercise(gateway_url)
    # A URL with a password logged as it is (a library's error, a start-up line).
    logging.getLogger("clawdesk.test").warning(
        "database unreachable",
        extra={"url": f"postgresql://clawdesk:{DATABASE_PASSWORD}@db:5432/clawdesk"},
    )
    await asyncio.sleep(0.2)  # the server thread's last access-log lines

    output = captured.getvalue()
    lines = [json.loads(line) for line in output.splitlines()]
    assert any("/webhooks/whatsapp" in str(line) for line in lines), "access log captured"
    assert any("rate limit check failed" in line["message"] for line in lines)
    secrets = [
        TOKEN_SECRET,
        WHATSAPP_SECRET,
        WHATSAPP_VERIFY,
        WHATSAPP_TOKEN,
        TELEGRAM_TOKEN,
        TELEGRAM_SECRET,
        WECHAT_TOKEN,
        WECHAT_SECRET,
        EMAIL_SECRET,
        INAPP_SECRET,
        *INAPP_KEYS.values(),
        INBOX_KEY,
        REDIS_PASSWORD,
        DATABASE_PASSWORD,
        *handed_out,
    ]
    leaked = [s for s in secrets if s in output]
    assert leaked == [], f"secrets in the log: {leaked}"
