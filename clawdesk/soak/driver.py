"""The soak's customers: C conversations × M messages across channels, at a fixed rate.

Each conversation sends its next message once the previous one was acknowledged, and
retries a refused or failed post the way its client would: the web widget and an app
backend with the same `client_message_id`, Telegram and WhatsApp with the same update /
message id (they re-deliver a webhook until it gets a 2xx). Such a retry is therefore
never a duplicate; the pipeline must take it once.
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import itertools
import json
import random
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import httpx

from clawdesk.bench.pipeline import FILL

CHANNELS = ("web", "inapp", "telegram", "whatsapp")
TELEGRAM_SECRET = "soak-telegram-secret"
WHATSAPP_APP_SECRET = "soak-whatsapp-app-secret"
WHATSAPP_PHONE_NUMBER_ID = "100000000000777"
INAPP_KEY = "soak-inapp-key-demo"
INAPP_SECRET = "soak-inapp-callback-secret"
TELEGRAM_CHAT_BASE = 8_000_000_000
WHATSAPP_CUSTOMER_BASE = 491_500_000_000
# The demo shop's questions that the bot answers itself (bench.TEMPLATES without the
# refund and return ones, whose skills may hand the conversation to a human).
TEMPLATES = [
    "How long does shipping to {place} take for item {n}?",
    "What's the status of order #{order}?",
    "Do you accept {pay} for order {n}?",
    "How do I reset my password, attempt {n}?",
    "发往{place_zh}的快递要几天?编号{n}",
]
MAX_BACKOFF_S = 8.0
REQUEST_TIMEOUT_S = 15.0


@dataclass(frozen=True)
class Conversation:
    """One customer's conversation: its channel, its own id there, and what it asks."""

    index: int
    channel: str
    local_id: str  # the chat / customer / local conversation id on its channel
    texts: tuple[str, ...]


@dataclass(frozen=True)
class Acked:
    """A message the gateway acknowledged."""

    channel: str
    conversation: int  # Conversation.index
    k: int  # its position in the conversation
    channel_message_id: str  # what the gateway dedupes it on
    first_try_at: float  # epoch seconds
    acked_at: float
    tries: int


@dataclass
class DriveResult:
    """What the customers saw."""

    acked: list[Acked] = field(default_factory=list)
    refusals: dict[str, int] = field(default_factory=dict)  # status / error → count
    unacked: int = 0  # given up (the time was up) before an acknowledgement
    started_at: float = 0.0
    ended_at: float = 0.0


def plan(conversations: int, messages: int, channels: list[str], seed: int) -> list[Conversation]:
    """Conversations spread round-robin over the channels, each with its questions."""
    rng = random.Random(seed)
    run = f"{seed:x}{rng.getrandbits(24):06x}"
    out = []
    for i in range(conversations):
        channel = channels[i % len(channels)]
        local = {
            "web": f"soak-{run}-{i}",
            "inapp": f"soak-{run}-{i}",
            "telegram": str(TELEGRAM_CHAT_BASE + rng.randrange(10**8) * 100 + i % 100),
            "whatsapp": str(WHATSAPP_CUSTOMER_BASE + rng.randrange(10**6) * 100 + i % 100),
        }[channel]
        texts = []
        for k in range(messages):
            fill = {key: rng.choice(values) for key, values in FILL.items()}
            texts.append(rng.choice(TEMPLATES).format(n=f"{i}-{k}", **fill))
        out.append(Conversation(i, channel, local, tuple(texts)))
    return out


class Pacer:
    """Spaces first attempts `1 / rate` seconds apart across every conversation."""

    def __init__(self, rate: float) -> None:
        self.interval = 1.0 / rate if rate > 0 else 0.0
        self.next_at = time.monotonic()
        self.lock = asyncio.Lock()

    async def wait(self) -> None:
        """Return at this caller's slot."""
        async with self.lock:
            now = time.monotonic()
            self.next_at = max(self.next_at, now)
            slot, self.next_at = self.next_at, self.next_at + self.interval
        await asyncio.sleep(max(0.0, slot - time.monotonic()))


@dataclass
class Driver:
    """Posts the conversations' messages to the gateway at `base_url`."""

    base_url: str
    rate: float
    deadline: float  # monotonic: no new attempt after this
    on_ack: Callable[[Acked], None] = lambda _: None
    result: DriveResult = field(default_factory=DriveResult)
    _update_ids: itertools.count[int] = field(default_factory=lambda: itertools.count(1))

    async def run(self, conversations: list[Conversation]) -> DriveResult:
        """Drive every conversation to its end (or the deadline)."""
        self.result.started_at = time.time()
        pacer = Pacer(self.rate)
        limits = httpx.Limits(max_connections=200, max_keepalive_connections=50)
        async with httpx.AsyncClient(
            base_url=self.base_url, timeout=REQUEST_TIMEOUT_S, limits=limits
        ) as client:
            await asyncio.gather(*(self._converse(client, pacer, c) for c in conversations))
        self.result.ended_at = time.time()
        return self.result

    async def _converse(self, client: httpx.AsyncClient, pacer: Pacer, conv: Conversation) -> None:
        token: list[str] = []  # the web conversation's token, once it has one
        web_id = ""
        if conv.channel == "web":
            opened = await self._post(client, "/api/web/conversations", json_body={})
            if opened is None:
                self.result.unacked += len(conv.texts)
                return
            web_id, token = opened["conversation_id"], [opened["token"]]
        for k, text in enumerate(conv.texts):
            await pacer.wait()
            if time.monotonic() > self.deadline:
                self.result.unacked += len(conv.texts) - k
                return
            first = time.time()
            message_id, request = self._request(conv, k, text, web_id)
            tries = [0]
            answer = await self._post(client, *request, token=token, tries=tries)
            if answer is None:
                self.result.unacked += len(conv.texts) - k
                return
            if conv.channel == "web" and isinstance(answer.get("token"), str):
                token[:] = [answer["token"]]  # the newest token opens the conversation
            acked = Acked(conv.channel, conv.index, k, message_id, first, time.time(), tries[0])
            self.result.acked.append(acked)
            self.on_ack(acked)

    def _request(
        self, conv: Conversation, k: int, text: str, web_id: str
    ) -> tuple[str, tuple[str, Any, bytes | None, dict[str, str]]]:
        """(the id the gateway dedupes on, (path, JSON body, raw body, headers))."""
        if conv.channel == "web":
            cmid = f"{conv.local_id}-m{k}"
            body = {"conversation_id": web_id, "text": text, "client_message_id": cmid}
            return cmid, ("/api/web/messages", body, None, {})
        if conv.channel == "inapp":
            cmid = f"{conv.local_id}-m{k}"
            body = {
                "customer_id": f"user-{conv.local_id}",
                "conversation_id": conv.local_id,
                "text": text,
                "client_message_id": cmid,
            }
            return cmid, ("/api/inapp/messages", body, None, {"X-Api-Key": INAPP_KEY})
        if conv.channel == "telegram":
            chat = int(conv.local_id)
            update = {
                "update_id": next(self._update_ids),
                "message": {
                    "message_id": k + 1,
                    "date": int(time.time()),
                    "chat": {"id": chat, "type": "private", "first_name": "Soak"},
                    "from": {"id": chat, "is_bot": False, "first_name": "Soak"},
                    "text": text,
                },
            }
            raw = json.dumps(update).encode()
            headers = {"X-Telegram-Bot-Api-Secret-Token": TELEGRAM_SECRET}
            return f"{chat}:{k + 1}", ("/webhooks/telegram", None, raw, headers)
        wamid = f"wamid.SOAK{conv.local_id}x{k}"
        raw = json.dumps(whatsapp_notification(conv.local_id, wamid, text)).encode()
        mac = hmac.new(WHATSAPP_APP_SECRET.encode(), raw, hashlib.sha256).hexdigest()
        headers = {"X-Hub-Signature-256": f"sha256={mac}"}
        return wamid, ("/webhooks/whatsapp", None, raw, headers)

    async def _post(
        self,
        client: httpx.AsyncClient,
        path: str,
        json_body: Any = None,
        raw: bytes | None = None,
        headers: dict[str, str] | None = None,
        *,
        token: list[str] | None = None,
        tries: list[int] | None = None,
    ) -> dict[str, Any] | None:
        """POST until a 2xx (its JSON body, {} if none), retrying 429/5xx/connection
        errors with backoff and Retry-After; None when the deadline passed first or the
        gateway refused for good (4xx)."""
        attempt = 0
        while True:
            attempt += 1
            if tries is not None:
                tries[0] = attempt
            sent = dict(headers or {})
            if token:
                sent["Authorization"] = f"Bearer {token[0]}"
            if raw is not None:
                sent["Content-Type"] = "application/json"
            wait: float | None = None
            try:
                response = await client.post(path, json=json_body, content=raw, headers=sent)
            except httpx.HTTPError as err:
                self._count(type(err).__name__)
            else:
                if response.is_success:
                    try:
                        answer = response.json()
                    except ValueError:
                        return {}
                    return answer if isinstance(answer, dict) else {}
                self._count(str(response.status_code))
                if response.status_code != 429 and response.status_code < 500:
                    return None  # refused for good: a driver bug, shown in the table
                wait = _retry_after(response)
            if time.monotonic() > self.deadline:
                return None
            backoff = min(MAX_BACKOFF_S, 0.25 * 2 ** min(attempt, 6))
            await asyncio.sleep(
                min(MAX_BACKOFF_S, wait) if wait else random.uniform(0.5, 1) * backoff
            )

    def _count(self, what: str) -> None:
        self.result.refusals[what] = self.result.refusals.get(what, 0) + 1


def _retry_after(response: httpx.Response) -> float | None:
    try:
        return float(response.headers.get("retry-after", ""))
    except ValueError:
        return None


def whatsapp_notification(wa_id: str, wamid: str, text: str) -> dict[str, Any]:
    """A Cloud API webhook body carrying one text message from `wa_id`."""
    value = {
        "messaging_product": "whatsapp",
        "metadata": {
            "display_phone_number": "15550007777",
            "phone_number_id": WHATSAPP_PHONE_NUMBER_ID,
        },
        "contacts": [{"profile": {"name": "Soak"}, "wa_id": wa_id}],
        "messages": [
            {
                "from": wa_id,
                "id": wamid,
                "timestamp": str(int(time.time())),
                "type": "text",
                "text": {"body": text},
            }
        ],
    }
    return {
        "object": "whatsapp_business_account",
        "entry": [{"id": "WABA-SOAK", "changes": [{"field": "messages", "value": value}]}],
    }


def channel_env() -> dict[str, str]:
    """The gateway's and workers' secrets for the driver's channels."""
    return {
        "CLAWDESK_TELEGRAM_SECRET_TOKEN": TELEGRAM_SECRET,
        "CLAWDESK_WHATSAPP_APP_SECRET": WHATSAPP_APP_SECRET,
        "CLAWDESK_WHATSAPP_VERIFY_TOKEN": "soak-verify",
        "CLAWDESK_WHATSAPP_PHONE_NUMBER_ID": WHATSAPP_PHONE_NUMBER_ID,
        "CLAWDESK_INAPP_API_KEYS": json.dumps({"demo": INAPP_KEY}),
        "CLAWDESK_INAPP_WEBHOOK_SECRET": INAPP_SECRET,
    }
