"""Thousands of malformed or forged calls at every webhook and message API: never a 5xx,
never an event.

Each webhook (and the in-app and web widget message APIs) gets junk bytes, junk JSON/XML,
valid payloads broken at a required field (all correctly signed, so they reach the
parser), and valid payloads with forged signatures. Hypothesis draws them
deterministically (`derandomize`), so CI is stable; the summary line says how many.
"""

from __future__ import annotations

import copy
import json
import time
from collections.abc import Iterator
from functools import partial
from typing import Any

import anyio.from_thread
import httpx
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from connectors.signatures import sign_timestamped
from tests.fakes.channels import telegram as tg
from tests.fakes.channels import wechat as wx
from tests.fakes.channels import whatsapp as wa

from .conftest import (
    EMAIL_SECRET,
    FUZZ_COUNTS,
    INAPP_KEYS,
    TELEGRAM_SECRET,
    WECHAT_TOKEN,
    WHATSAPP_SECRET,
    Hooks,
    make_channels,
    open_hooks,
)
from .test_email import raw_mail

EXAMPLES = 1000  # per surface: 6000 calls, about 12 s here
Request = tuple[str, dict[str, Any]]  # (method, httpx request kwargs)

# Values a required field of its kind refuses (pydantic's lax mode turns "5" into 5 and
# 1.0 into 1, so those are left out): ids, then free text.
WRONG = st.sampled_from([None, "", "a b/c", [], {}, [1], {"x": 1}, 1.5, 2**70, "x" * 300])
WRONG_TEXT = st.sampled_from([None, "", [], {}, [1], {"x": 1}, 1.5, 2**70, True])
JSON_LEAF = (
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=20)
)
JUNK_JSON = st.recursive(
    JSON_LEAF,
    lambda inner: (
        st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4)
    ),
    max_leaves=15,
).map(lambda v: json.dumps(v).encode())
JUNK_BYTES = st.binary(max_size=1500)
FORGED = st.binary(max_size=80).map(lambda b: b.replace(b"\r", b"").replace(b"\n", b""))


def broken(
    valid: dict[str, Any],
    paths: list[tuple[Any, ...]],
    wrong: st.SearchStrategy[Any] = WRONG,
) -> st.SearchStrategy[bytes]:
    """`valid` with one required field (a path) deleted or set to a wrong value."""

    def apply(path: tuple[Any, ...], value: Any, delete: bool) -> bytes:
        payload = copy.deepcopy(valid)
        parent = payload
        for step in path[:-1]:
            parent = parent[step]
        # Dropping one item of a list leaves a valid payload: items are only replaced.
        if delete and not isinstance(path[-1], int):
            del parent[path[-1]]
        else:
            parent[path[-1]] = value
        return json.dumps(payload).encode()

    return st.builds(apply, st.sampled_from(paths), wrong, st.booleans())


@pytest.fixture(scope="module")
def fuzz() -> Iterator[tuple[anyio.from_thread.BlockingPortal, Hooks]]:
    channels = make_channels(wechat_reply_wait_s=0.05)
    with anyio.from_thread.start_blocking_portal() as portal:
        with portal.wrap_async_context_manager(open_hooks(channels)) as hooks:
            yield portal, hooks


def run_fuzz(
    fuzz: tuple[anyio.from_thread.BlockingPortal, Hooks],
    name: str,
    requests: st.SearchStrategy[Request],
) -> None:
    portal, hooks = fuzz
    count = 0

    @settings(
        max_examples=EXAMPLES,
        deadline=None,
        database=None,
        derandomize=True,
        suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
    )
    @given(requests)
    def check(request: Request) -> None:
        nonlocal count
        method, kwargs = request
        hooks.producer.sent.clear()  # a failure must be pinned on the example that caused it
        response: httpx.Response = portal.call(partial(hooks.client.request, method, **kwargs))
        count += 1
        assert response.status_code < 500, (response.status_code, response.text[:300])
        assert hooks.producer.sent == [], f"enqueued from {kwargs.get('content', b'')[:200]!r}"

    check()
    FUZZ_COUNTS[name] = count


# --- WhatsApp -----------------------------------------------------------------------


def whatsapp_signed(body: bytes) -> Request:
    headers = {"X-Hub-Signature-256": wa.meta_signature(WHATSAPP_SECRET, body)}
    return "POST", {"url": "/webhooks/whatsapp", "content": body, "headers": headers}


WA_VALID = wa.notification([wa.text_message("hi"), wa.button_reply("a", "A")])
_VALUE = ("entry", 0, "changes", 0, "value")
WA_PATHS: list[tuple[Any, ...]] = [
    ("object",),
    ("entry",),
    ("entry", 0, "changes"),
    (*_VALUE,),
    (*_VALUE, "metadata"),
    (*_VALUE, "metadata", "phone_number_id"),
    (*_VALUE, "messages"),
    (*_VALUE, "messages", 0),
    (*_VALUE, "messages", 0, "id"),
    (*_VALUE, "messages", 0, "from"),
    (*_VALUE, "messages", 0, "text"),
    (*_VALUE, "messages", 1, "interactive", "button_reply"),
    (*_VALUE, "messages", 1, "id"),
]
WA_TEXT_PATHS: list[tuple[Any, ...]] = [
    (*_VALUE, "messages", 0, "text", "body"),
    (*_VALUE, "messages", 1, "interactive", "button_reply", "title"),
]
WA_FORGED = FORGED.map(
    lambda sig: (
        "POST",
        {
            "url": "/webhooks/whatsapp",
            "content": wa.encode(WA_VALID),
            "headers": {"X-Hub-Signature-256": sig},
        },
    )
)


# A delivery status alone: broken at a field it needs, so no receipt is recorded.
WA_STATUS_VALID = wa.notification(statuses=[wa.status("delivered")])
WA_STATUS_PATHS: list[tuple[Any, ...]] = [
    (*_VALUE, "metadata"),
    (*_VALUE, "metadata", "phone_number_id"),
    (*_VALUE, "statuses", 0),
    (*_VALUE, "statuses", 0, "id"),
    (*_VALUE, "statuses", 0, "recipient_id"),
]


def test_whatsapp_webhook_survives_fuzzing(fuzz: Any) -> None:
    signed = st.one_of(
        JUNK_BYTES,
        JUNK_JSON,
        broken(WA_VALID, WA_PATHS),
        broken(WA_VALID, WA_TEXT_PATHS, WRONG_TEXT),
        broken(WA_STATUS_VALID, WA_STATUS_PATHS),
    ).map(whatsapp_signed)
    run_fuzz(fuzz, "whatsapp", st.one_of(signed, WA_FORGED))


# --- Telegram -----------------------------------------------------------------------


def telegram_call(body: bytes, secret: bytes = TELEGRAM_SECRET.encode()) -> Request:
    return "POST", {
        "url": "/webhooks/telegram",
        "content": body,
        "headers": {"X-Telegram-Bot-Api-Secret-Token": secret},
    }


TG_VALID = tg.text_update("hi")
TG_PATHS: list[tuple[Any, ...]] = [
    ("update_id",),
    ("message", "message_id"),
    ("message", "chat"),
    ("message", "chat", "id"),
    ("message", "from", "id"),
]


def tg_broken_text(value: Any) -> bytes:
    payload = copy.deepcopy(TG_VALID)
    payload["message"]["text"] = value
    return json.dumps(payload).encode()


def test_telegram_webhook_survives_fuzzing(fuzz: Any) -> None:
    bad_text = st.sampled_from([5, [], {}, 1.5, True, "x" * 20_001]).map(tg_broken_text)
    signed = st.one_of(JUNK_BYTES, JUNK_JSON, broken(TG_VALID, TG_PATHS), bad_text)
    forged = FORGED.filter(lambda s: s != TELEGRAM_SECRET.encode()).map(
        lambda s: telegram_call(json.dumps(TG_VALID).encode(), s)
    )
    run_fuzz(fuzz, "telegram", st.one_of(signed.map(telegram_call), forged))


# --- WeChat -------------------------------------------------------------------------

WX_FIELDS = {
    "ToUserName": wx.ACCOUNT,
    "FromUserName": wx.OPENID,
    "CreateTime": "1700000000",
    "MsgType": "text",
    "Content": "hi",
    "MsgId": "1234567890",
}
_WX_BAD_ID = ["", "a b", "<", "&", "x" * 100, "]]>", "中文", "a/b"]
WX_WRONG = {
    "ToUserName": _WX_BAD_ID,
    "FromUserName": _WX_BAD_ID,
    "CreateTime": ["", "a b", "-1", "1.5", "9" * 13, "<"],
    "MsgId": ["", "a b", "-1", "1.5", "9" * 33, "x"],
}


def wx_xml(fields: dict[str, str]) -> bytes:
    inner = "".join(f"<{k}><![CDATA[{v}]]></{k}>" for k, v in fields.items())
    return f"<xml>{inner}</xml>".encode()


@st.composite
def wx_broken(draw: st.DrawFn) -> bytes:
    fields = dict(WX_FIELDS)
    key = draw(st.sampled_from(sorted(WX_FIELDS)))
    if draw(st.booleans()) or key not in WX_WRONG:
        del fields[key]
    else:
        fields[key] = draw(st.sampled_from(WX_WRONG[key]))
    return wx_xml(fields)


WX_JUNK_XML = st.one_of(
    st.text(max_size=200).map(lambda t: f"<xml>{t}</xml>".encode()),
    st.dictionaries(st.from_regex(r"\A[A-Za-z]{1,10}\Z"), st.text(max_size=30), max_size=6).map(
        lambda d: wx_xml({k: v.replace("]]>", "") for k, v in d.items()})
    ),
    st.sampled_from(
        [
            b'<!DOCTYPE x [<!ENTITY a "b">]><xml>&a;</xml>',
            b"<?xml version='1.0' encoding='UTF-16'?><xml/>",
            b"<xml><a><b/></a></xml>",
        ]
    ),
)


def wechat_call(body: bytes, query: dict[str, str] | None = None) -> Request:
    params = query if query is not None else wx.signed_query(WECHAT_TOKEN)
    return "POST", {"url": "/webhooks/wechat", "content": body, "params": params}


@st.composite
def wx_forged_query(draw: st.DrawFn) -> dict[str, str]:
    query = wx.signed_query(WECHAT_TOKEN)
    key = draw(st.sampled_from(["signature", "timestamp", "nonce"]))
    query[key] = draw(st.text(max_size=40).filter(lambda v: v != query[key]))
    if draw(st.booleans()):
        # Correctly signed but old: a captured URL replayed later.
        query = wx.signed_query(
            WECHAT_TOKEN, timestamp=int(time.time()) - draw(st.integers(301, 10**9))
        )
    return query


def test_wechat_webhook_survives_fuzzing(fuzz: Any) -> None:
    signed = st.one_of(JUNK_BYTES, WX_JUNK_XML, wx_broken()).map(wechat_call)
    forged = wx_forged_query().map(lambda q: wechat_call(wx.text_xml("hi"), q))
    verify = wx_forged_query().map(
        lambda q: ("GET", {"url": "/webhooks/wechat", "params": {**q, "echostr": "1"}})
    )
    run_fuzz(fuzz, "wechat", st.one_of(signed, forged, verify))


# --- E-mail -------------------------------------------------------------------------


def email_call(body: bytes, *, at: int | None = None, secret: str = EMAIL_SECRET) -> Request:
    timestamp = int(time.time()) if at is None else at
    headers = {
        "X-Clawdesk-Timestamp": str(timestamp),
        "X-Clawdesk-Signature": sign_timestamped(secret, timestamp, body),
    }
    return "POST", {"url": "/webhooks/email", "content": body, "headers": headers}


def senderless(headers: bytes, body: bytes) -> bytes:
    lines = [h for h in headers.split(b"\n") if not h.lower().lstrip().startswith(b"from")]
    return b"\n".join(lines) + b"\n\n" + body


def test_email_webhook_survives_fuzzing(fuzz: Any) -> None:
    mail = raw_mail()
    signed = st.one_of(
        JUNK_BYTES,
        st.builds(senderless, st.binary(max_size=400), st.binary(max_size=400)),
        st.sampled_from(
            [
                b"From: nobody\n\nhi",
                b"From: <>\n\nhi",
                b"From: a@b@c\n\nhi",
                b"From: =?utf-8?q?=ff?= <\xff@x>\n\nhi",
            ]
        ),
    ).map(email_call)
    stale = st.integers(301, 10**9).map(lambda age: email_call(mail, at=int(time.time()) - age))
    forged = (
        st.text(max_size=30)
        .filter(lambda s: s != EMAIL_SECRET)
        .map(lambda s: email_call(mail, secret=s))
    )
    run_fuzz(fuzz, "email", st.one_of(signed, stale, forged))


# --- In-app -------------------------------------------------------------------------

INAPP_VALID = {"customer_id": "u", "text": "hi", "client_message_id": "m", "conversation_id": "c"}


def inapp_call(body: bytes, key: bytes = INAPP_KEYS["demo"].encode()) -> Request:
    return "POST", {"url": "/api/inapp/messages", "content": body, "headers": {"X-Api-Key": key}}


def test_inapp_api_survives_fuzzing(fuzz: Any) -> None:
    paths: list[tuple[Any, ...]] = [("customer_id",), ("text",), ("client_message_id",)]
    signed = st.one_of(
        JUNK_BYTES,
        JUNK_JSON,
        broken(INAPP_VALID, paths, WRONG_TEXT),
        WRONG.filter(lambda v: v is not None).map(
            lambda v: json.dumps({**INAPP_VALID, "conversation_id": v}).encode()
        ),
        st.text(max_size=20).map(
            lambda t: json.dumps({**INAPP_VALID, "text": " " * len(t)}).encode()
        ),
    ).map(inapp_call)
    forged = FORGED.filter(lambda k: k.decode("latin-1") not in INAPP_KEYS.values()).map(
        lambda k: inapp_call(json.dumps(INAPP_VALID).encode(), k)
    )
    history = FORGED.map(
        lambda k: (
            "GET",
            {"url": "/api/inapp/conversations/inapp:acme:c/messages", "headers": {"X-Api-Key": k}},
        )
    )
    run_fuzz(fuzz, "inapp", st.one_of(signed, forged, history))


# --- Web widget ---------------------------------------------------------------------

WEB_VALID = {"text": "hi", "client_message_id": "m-1", "conversation_id": "c-1"}


def web_call(body: bytes) -> Request:
    headers = {"Content-Type": "application/json"}
    return "POST", {"url": "/api/web/messages", "content": body, "headers": headers}


def test_web_message_api_survives_fuzzing(fuzz: Any) -> None:
    # Optional fields may be left out (None), so they are only ever set to a wrong value;
    # ids with a pattern refuse more than the free-text customer id does.
    wrong_optional = st.one_of(
        st.tuples(st.sampled_from(["conversation_id", "tenant_id"]), WRONG),
        st.tuples(st.just("customer_id"), WRONG_TEXT),
    ).filter(lambda change: change[1] is not None)
    signed = st.one_of(
        JUNK_BYTES,
        JUNK_JSON,
        # Any non-empty string is a client id (it is only a dedupe key).
        broken(WEB_VALID, [("text",), ("client_message_id",)], WRONG_TEXT),
        wrong_optional.map(lambda change: json.dumps({**WEB_VALID, change[0]: change[1]}).encode()),
        st.text(max_size=20).map(
            lambda t: json.dumps({**WEB_VALID, "text": " " * len(t)}).encode()
        ),
        # Well-formed, but for a tenant that does not exist.
        st.from_regex(r"\A[a-z]{1,12}\Z")
        .filter(lambda t: t not in ("demo", "acme"))
        .map(lambda t: json.dumps({**WEB_VALID, "tenant_id": t}).encode()),
    )
    run_fuzz(fuzz, "web", signed.map(web_call))
