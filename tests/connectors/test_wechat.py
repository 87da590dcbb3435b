"""The WeChat official-account channel: signed URL checks, XML in, passive and
customer-service replies, the access-token cache."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterator
from datetime import timedelta
from xml.etree.ElementTree import fromstring

import httpx
import pytest

from connectors import wechat
from connectors.config import ChannelSettings
from schemas import Channel, InboundMessage, Reply, utc_now
from tests.fakes.channels.server import serve
from tests.fakes.channels.wechat import (
    ACCOUNT,
    OPENID,
    FakeWeChatApi,
    event_xml,
    signed_query,
    subscribe_xml,
    text_xml,
)

from .conftest import WECHAT_APPID, WECHAT_SECRET, WECHAT_TOKEN, Hooks, make_channels

URL = "/webhooks/wechat"


def reply_to(message: InboundMessage, text: str = "您的订单明天发货。") -> Reply:
    return Reply(
        **message.lineage(),
        reply_id=f"r-{message.event_id}",
        in_reply_to=message.event_id,
        customer_id=message.customer_id,
        text=text,
        language="zh",
        intent="order_status",
        confidence=0.9,
        received_at=message.received_at,
        metadata=message.metadata,
    )


async def test_url_check_echoes_echostr(hooks: Hooks) -> None:
    params = {**signed_query(WECHAT_TOKEN), "echostr": "5838479218127813673"}

    response = await hooks.client.get(URL, params=params)

    assert response.status_code == 200
    assert response.text == "5838479218127813673"


@pytest.mark.parametrize(
    "params",
    [
        {**signed_query("wrong-token"), "echostr": "1"},
        {**signed_query(WECHAT_TOKEN), "signature": "0" * 40, "echostr": "1"},
        {"echostr": "1"},
        {**signed_query(WECHAT_TOKEN, timestamp=int(time.time()) - 3600), "echostr": "1"},
    ],
)
async def test_url_check_refuses_bad_or_stale_signatures(hooks: Hooks, params: dict) -> None:
    response = await hooks.client.get(URL, params=params)

    assert response.status_code == 401
    assert response.json()["error"]


async def post_until_enqueued(
    hooks: Hooks, body: bytes
) -> tuple[asyncio.Task[httpx.Response], InboundMessage]:
    """Start the POST; return it (still waiting for its reply) once its message is enqueued."""
    enqueued = asyncio.Event()
    send = hooks.producer.send_and_wait

    async def send_and_wait(topic: str, value: bytes | None = None, key: bytes | None = None):
        result = await send(topic, value=value, key=key)
        enqueued.set()
        return result

    hooks.producer.send_and_wait = send_and_wait  # type: ignore[method-assign]
    request = asyncio.create_task(
        hooks.client.post(URL, params=signed_query(WECHAT_TOKEN), content=body)
    )
    await asyncio.wait_for(enqueued.wait(), timeout=5)
    (message,) = hooks.inbound()
    return request, message


async def test_a_reply_within_the_wait_is_answered_passively(hooks: Hooks) -> None:
    request, message = await post_until_enqueued(hooks, text_xml("订单到哪了"))
    hooks.consumer.feed(reply_to(message).to_bytes())

    response = await request

    assert response.status_code == 200
    assert response.headers["content-type"].startswith("application/xml")
    xml = fromstring(response.text)
    assert xml.findtext("ToUserName") == OPENID
    assert xml.findtext("FromUserName") == ACCOUNT
    assert xml.findtext("MsgType") == "text"
    assert xml.findtext("Content") == "您的订单明天发货。"
    assert message.channel is Channel.WECHAT
    assert message.conversation_id == f"wechat:{ACCOUNT}:{OPENID}"
    assert message.channel_message_id == "23456789012345678"
    assert message.text == "订单到哪了"


async def test_without_a_reply_in_time_the_answer_is_success(hooks: Hooks) -> None:
    started = time.monotonic()

    response = await hooks.client.post(
        URL, params=signed_query(WECHAT_TOKEN), content=text_xml("hi")
    )

    assert response.status_code == 200
    assert response.text == "success"
    assert 0.4 <= time.monotonic() - started < 2  # wechat_reply_wait_s is 0.5 here
    assert len(hooks.inbound()) == 1


async def test_the_reply_to_an_earlier_message_is_not_taken_for_this_one(hooks: Hooks) -> None:
    request, message = await post_until_enqueued(hooks, text_xml("second"))
    earlier = message.model_copy(update={"event_id": "earlier"})
    hooks.consumer.feed(reply_to(earlier, "answer to the first").to_bytes())

    response = await request

    assert response.text == "success"


async def test_subscribe_event_is_enqueued_and_other_kinds_are_not(hooks: Hooks) -> None:
    # A menu link opened (VIEW) says nothing to answer.
    view = await hooks.client.post(
        URL,
        params=signed_query(WECHAT_TOKEN),
        content=event_xml("VIEW", key="https://shop.example/orders"),
    )
    subscribe = await hooks.client.post(
        URL, params=signed_query(WECHAT_TOKEN), content=subscribe_xml()
    )

    assert (view.status_code, view.text) == (200, "success")
    assert subscribe.status_code == 200
    (message,) = hooks.inbound()
    assert message.metadata[wechat.META_EVENT] == "subscribe"
    assert message.channel_message_id == f"{OPENID}:1700000005:subscribe"


BILLION_LAUGHS = b"""<?xml version="1.0"?>
<!DOCTYPE lolz [<!ENTITY lol "lol"><!ENTITY lol2 "&lol;&lol;&lol;&lol;&lol;&lol;&lol;">]>
<xml><ToUserName>a</ToUserName><FromUserName>b</FromUserName><CreateTime>1</CreateTime>
<MsgType>text</MsgType><Content>&lol2;</Content><MsgId>1</MsgId></xml>"""
EXTERNAL_ENTITY = b"""<?xml version="1.0"?>
<!DOCTYPE x [<!ENTITY xxe SYSTEM "file:///etc/passwd">]>
<xml><ToUserName>a</ToUserName><FromUserName>b</FromUserName><CreateTime>1</CreateTime>
<MsgType>text</MsgType><Content>&xxe;</Content><MsgId>1</MsgId></xml>"""


@pytest.mark.parametrize(
    "body",
    [
        BILLION_LAUGHS,
        EXTERNAL_ENTITY,
        b"<xml><ToUserName>a</ToUserName>",
        b"not xml at all",
        b"<notxml/>",
        text_xml("hi").replace(b"FromUserName", b"Nobody"),
        text_xml("hi", openid="bad id/with spaces"),
        text_xml("hi").replace(b"<MsgId>23456789012345678</MsgId>", b""),
        "<xml>\u00e9</xml>".encode("latin-1"),
    ],
)
async def test_unsafe_or_malformed_xml_is_400_and_nothing_enqueued(
    hooks: Hooks, body: bytes
) -> None:
    response = await hooks.client.post(URL, params=signed_query(WECHAT_TOKEN), content=body)

    assert response.status_code == 400
    assert hooks.producer.sent == []


async def test_a_replayed_post_with_an_old_timestamp_is_401(hooks: Hooks) -> None:
    params = signed_query(WECHAT_TOKEN, timestamp=int(time.time()) - 600)

    response = await hooks.client.post(URL, params=params, content=text_xml("hi"))

    assert response.status_code == 401
    assert "timestamp" in response.json()["error"]
    assert hooks.producer.sent == []


async def test_an_unknown_tenant_is_404(hooks: Hooks) -> None:
    hooks.app.state.channel_settings = make_channels(
        wechat_tenant="nobody", wechat_reply_wait_s=0.1
    )

    response = await hooks.client.post(
        URL, params=signed_query(WECHAT_TOKEN), content=text_xml("hi")
    )

    assert response.status_code == 404
    assert hooks.producer.sent == []


def test_passive_reply_survives_a_cdata_terminator_in_the_text() -> None:
    message = wechat.parse_message(text_xml("x"), tenant_id="demo")
    assert message is not None

    xml = fromstring(wechat.render_passive_reply(reply_to(message, "a ]]> b <c>")))

    assert xml.findtext("Content") == "a ]]> b <c>"


# --- sending: passive or customer-service API ------------------------------------------


@pytest.fixture
def api() -> Iterator[tuple[FakeWeChatApi, ChannelSettings]]:
    fake = FakeWeChatApi(WECHAT_APPID, WECHAT_SECRET)
    with serve(fake.app) as base:
        yield fake, make_channels(wechat_api_base=base)


def inbound(text: str = "hi") -> InboundMessage:
    message = wechat.parse_message(text_xml(text), tenant_id="demo")
    assert message is not None
    return message


async def test_a_fresh_reply_goes_to_the_waiting_webhook(
    api: tuple[FakeWeChatApi, ChannelSettings],
) -> None:
    fake, settings = api
    published: list[Reply] = []

    async def publish(reply: Reply) -> str:
        published.append(reply)
        return reply.reply_id

    reply = reply_to(inbound())
    provider_id = await wechat.send(reply, settings=settings, publish=publish)

    assert published == [reply]
    assert provider_id == reply.reply_id
    assert fake.sent == []


async def test_a_late_reply_goes_by_the_customer_service_api(
    api: tuple[FakeWeChatApi, ChannelSettings],
) -> None:
    fake, settings = api
    message = inbound()
    late = reply_to(message.model_copy(update={"received_at": utc_now() - timedelta(seconds=10)}))

    async def publish(reply: Reply) -> str:
        raise AssertionError("a late reply must not be published for the webhook")

    provider_id = await wechat.send(
        late, settings=settings, publish=publish, tokens=wechat.AccessTokens()
    )

    assert provider_id == late.reply_id
    (call,) = fake.sent
    assert call.query["access_token"] == "ACCESS_TOKEN_1"
    assert call.json == {
        "touser": OPENID,
        "msgtype": "text",
        "text": {"content": "您的订单明天发货。"},
    }
    assert "您的".encode() in call.body  # UTF-8, not \\u escapes


async def test_an_agent_reply_goes_by_the_customer_service_api_however_fresh(
    api: tuple[FakeWeChatApi, ChannelSettings],
) -> None:
    # The inbox stamps an agent's reply with the time it was sent: no webhook waits for it.
    fake, settings = api
    agent = reply_to(inbound()).model_copy(
        update={"author": "agent", "intent": "agent", "received_at": utc_now()}
    )

    async def publish(reply: Reply) -> str:
        raise AssertionError("an agent's reply must not be published for a webhook")

    provider_id = await wechat.send(
        agent, settings=settings, publish=publish, tokens=wechat.AccessTokens()
    )

    assert provider_id == agent.reply_id
    (call,) = fake.sent
    assert call.json["touser"] == OPENID
    assert call.json["text"] == {"content": agent.text}


async def test_the_access_token_is_fetched_once_and_reused(
    api: tuple[FakeWeChatApi, ChannelSettings],
) -> None:
    fake, settings = api
    tokens = wechat.AccessTokens()

    for _ in range(3):
        await wechat.send_custom(reply_to(inbound()), settings=settings, tokens=tokens)

    assert fake.token_fetches == 1
    assert len(fake.sent) == 3


async def test_an_expired_token_is_refreshed_and_the_send_retried(
    api: tuple[FakeWeChatApi, ChannelSettings],
) -> None:
    fake, settings = api
    tokens = wechat.AccessTokens()
    await wechat.send_custom(reply_to(inbound()), settings=settings, tokens=tokens)
    fake.expire_tokens()

    await wechat.send_custom(reply_to(inbound()), settings=settings, tokens=tokens)

    assert fake.token_fetches == 2
    assert [c.query["access_token"] for c in fake.sent] == [
        "ACCESS_TOKEN_1",
        "ACCESS_TOKEN_1",
        "ACCESS_TOKEN_2",
    ]


async def test_the_token_is_refetched_once_its_lifetime_minus_margin_passes(
    api: tuple[FakeWeChatApi, ChannelSettings],
) -> None:
    fake, settings = api
    fake.expires_in = 1
    tokens = wechat.AccessTokens(margin_s=0.5)

    await wechat.send_custom(reply_to(inbound()), settings=settings, tokens=tokens)
    await wechat.send_custom(reply_to(inbound()), settings=settings, tokens=tokens)
    await asyncio.sleep(0.6)
    await wechat.send_custom(reply_to(inbound()), settings=settings, tokens=tokens)

    assert fake.token_fetches == 2


def test_the_token_cache_serves_several_event_loops(monkeypatch: pytest.MonkeyPatch) -> None:
    # The module-wide cache outlives an event loop (a CLI or a test run starts several);
    # a lock bound to the first loop would fail the first contended fetch on the next.
    fetches: list[str] = []

    async def fetch(http: object, settings: ChannelSettings) -> tuple[str, float]:
        fetches.append(settings.wechat_appid)
        await asyncio.sleep(0.01)
        return f"TOKEN_{len(fetches)}", 7200.0

    monkeypatch.setattr(wechat, "_fetch_token", fetch)
    tokens = wechat.AccessTokens()
    settings = ChannelSettings(wechat_appid="wx-loops", wechat_secret="s")

    async def three_at_once() -> list[str]:
        return list(await asyncio.gather(*(tokens.get(None, settings) for _ in range(3))))  # type: ignore[arg-type]

    assert asyncio.run(three_at_once()) == ["TOKEN_1"] * 3
    tokens.invalidate("wx-loops")
    assert asyncio.run(three_at_once()) == ["TOKEN_2"] * 3
    assert len(fetches) == 2
