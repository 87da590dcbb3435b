"""A recorded "day" of production traffic for the replay tests.

A real production worker (every stage, dispatcher and handoff agent included) answers
a few Telegram conversations over the real broker, Postgres and Redis, with the fake
Telegram Bot API, Shopify, Stripe and Zendesk: a KB question, an order status, a
refund confirmed with "yes" (refunded through Stripe), a request for a human (a Zendesk
ticket) followed by a message the bot leaves to the human, a Chinese question and an
unclear message. The replays of the tests run over what Postgres stored of it.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import psycopg
import pytest
from psycopg import sql

from clawdesk.bench.harness import Harness
from clawdesk.replay.driver import Replay
from clawdesk.replay.shadow import Infra
from clawdesk.replay.source import Selection
from clawdesk.settings import AppSettings
from schemas import Channel, InboundMessage, new_id
from tests.conftest import fresh_database
from tests.fakes import shopify, stripe, zendesk
from tests.fakes.channels import telegram as tg
from tests.fakes.channels.server import serve
from tests.fakes.fixtures import Fakes, fake_servers
from tests.integration.conftest import Pipeline, print_log_tails
from topics import inbound_spec

__all__ = ["fake_servers"]
TG_TOKEN = "424242:replay-bot-token"
MIKE = "mike.turner@example.com"
# (chat, text) in the order customers wrote them; each waits for the previous answer.
DAY: list[tuple[int, str]] = [
    (5001, "How long does shipping to Germany take?"),
    (5002, "where is my order #1002"),
    (5003, f"I want a refund for order #1002, my email is {MIKE}"),
    (5003, "yes"),
    (5004, "I want to talk to a human"),
    (5004, "hello? anyone there?"),
    (5005, "退货政策是什么?"),
    (5006, "can I pay with PayPal?"),
    (5007, "asdf qwerty zxcv"),
    (5001, "thanks"),
]


@dataclass
class Day:
    """The recorded day: where it lives and what it covered."""

    database_url: str
    bootstrap: str
    redis_url: str
    settings: AppSettings
    selection: Selection
    fakes: Fakes
    bot: tg.FakeBotApi
    messages: list[InboundMessage]

    def replay(self) -> Replay:
        """The replay context the tests drive (production's parts and settings)."""
        infra = Infra(self.bootstrap, self.database_url, self.redis_url)
        return Replay(infra, self.settings, stall_s=60.0, start_s=300.0)

    def production_counts(self) -> dict[str, int]:
        """Rows in every production table (the replay registry aside)."""
        with psycopg.connect(self.database_url) as conn:
            tables = [
                r[0]
                for r in conn.execute(
                    "SELECT table_name FROM information_schema.tables WHERE table_schema ="
                    " 'public' AND table_type = 'BASE TABLE' AND table_name <> 'replay_runs'"
                )
            ]
            return {
                t: conn.execute(
                    sql.SQL("SELECT count(*) FROM {}").format(sql.Identifier(t))
                ).fetchone()[0]  # type: ignore[index]
                for t in sorted(tables)
            }

    def production_cache(self) -> dict[bytes, tuple[Any, int]]:
        """Every Redis entry of production's cache namespace: (value, ms left to live)."""
        import redis

        client = redis.Redis.from_url(self.redis_url)
        try:
            keys = sorted(client.scan_iter(match=f"{self.settings.app_id}:*"))
            return {k: (client.get(k), client.pttl(k)) for k in keys}
        finally:
            client.close()

    def assert_cache_untouched(self, before: dict[bytes, tuple[Any, int]]) -> None:
        """No production key was added or written since `before` (one may have expired):
        a write would change the value or give the key a fresh time to live."""
        after = self.production_cache()
        assert after.keys() <= before.keys(), "no production cache key added"
        for key, (value, ttl) in after.items():
            assert value == before[key][0], key
            assert ttl <= before[key][1], f"{key!r} was written again (its TTL grew)"

    def effects(self) -> dict[str, int]:
        """What reached the outside: channel sends, refunds, tickets."""
        return {
            "telegram_sends": len(self.bot.sent),
            "stripe_refunds": len(self.fakes.stripe.calls_to("POST", "/v1/refunds")),
            "zendesk_tickets": len(self.fakes.zendesk.tickets),
        }


async def _decided(url: str, event_id: str, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        async with await psycopg.AsyncConnection.connect(url) as conn:
            cur = await conn.execute("SELECT 1 FROM decisions WHERE message_id = %s", (event_id,))
            if await cur.fetchone() is not None:
                return
        await asyncio.sleep(0.1)
    raise TimeoutError(f"no decision for {event_id} in {timeout:.0f}s")


def _telegram(chat: int, text: str) -> InboundMessage:
    return InboundMessage(
        conversation_id=f"telegram:{chat}",
        tenant_id="demo",
        channel=Channel.TELEGRAM,
        channel_message_id=f"{chat}:{new_id()[:8]}",
        customer_id=str(chat),
        text=text,
        metadata={"telegram_chat_id": str(chat)},
    )


@pytest.fixture(scope="module")
def bot() -> Iterator[tuple[tg.FakeBotApi, str]]:
    api = tg.FakeBotApi(TG_TOKEN)
    with serve(api.app) as url:
        yield api, url


@pytest.fixture(scope="module")
async def day(
    pg_server: str,
    broker: str,
    redis_url: str,
    models_dir: Path,
    fake_servers: Fakes,
    bot: tuple[tg.FakeBotApi, str],
    tmp_path_factory: pytest.TempPathFactory,
) -> AsyncIterator[Day]:
    """Run the day through a production worker; the worker is stopped before the tests."""
    root = tmp_path_factory.mktemp("day")
    api, bot_url = bot
    for fake in fake_servers.all():
        fake.reset()
    env = {
        "CLAWDESK_SHOPIFY_URL": fake_servers.shopify.base_url,
        "CLAWDESK_SHOPIFY_TOKEN": shopify.TOKEN,
        "CLAWDESK_STRIPE_URL": fake_servers.stripe.base_url,
        "CLAWDESK_STRIPE_SECRET_KEY": stripe.SECRET_KEY,
        "CLAWDESK_ZENDESK_URL": fake_servers.zendesk.base_url,
        "CLAWDESK_ZENDESK_EMAIL": zendesk.EMAIL,
        "CLAWDESK_ZENDESK_API_TOKEN": zendesk.API_TOKEN,
        "CLAWDESK_TELEGRAM_BOT_TOKEN": TG_TOKEN,
        "CLAWDESK_TELEGRAM_API_BASE": bot_url,
    }
    # Production's and every shadow worker's environment: all the providers configured,
    # so a shadow run that reached any of them would show in the fakes.
    with pytest.MonkeyPatch.context() as mp, fresh_database(pg_server) as url:
        for key, value in env.items():
            mp.setenv(key, value)
        pipeline = Pipeline(broker, url, redis_url, root, models_dir)
        since = datetime.now(UTC) - timedelta(minutes=1)
        messages: list[InboundMessage] = []
        pipeline.start_worker()
        try:
            async with Harness(broker, pipeline.settings) as harness:
                for i, (chat, text) in enumerate(DAY):
                    msg = _telegram(chat, text)
                    await harness.send(inbound_spec, msg.conversation_id, msg.to_bytes())
                    await _decided(url, msg.event_id, 400.0 if i == 0 else 60.0)
                    messages.append(msg)
            replies = len(DAY) - 1  # the message to the human gets none
            for _ in range(300):  # 30 s for the dispatcher to send them
                if len(api.sent) >= replies:
                    break
                await asyncio.sleep(0.1)
            await asyncio.sleep(1.0)  # the handoff's ticket, the last commits
        except BaseException:
            print_log_tails(root, 150)
            raise
        finally:
            pipeline.stop_all()
        settings = pipeline.settings.model_copy(
            update={"data_dir": root / "replays", "models_dir": models_dir}
        )
        yield Day(
            url,
            broker,
            redis_url,
            settings,
            Selection(since, datetime.now(UTC) + timedelta(minutes=1)),
            fake_servers,
            api,
            messages,
        )
