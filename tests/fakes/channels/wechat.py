"""A fake WeChat API (`/cgi-bin/token`, `/cgi-bin/message/custom/send`) and the signed
calls the WeChat server makes to an official account's URL."""

from __future__ import annotations

import hashlib
import json
import time
from typing import Any

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse, Response

from .server import Recorded

ACCOUNT = "gh_0123456789ab"
OPENID = "oUpF8uMuAJO_M2pxb1Q9zNjWeS6o"


def signed_query(token: str, *, timestamp: int | None = None, nonce: str = "1514711492") -> dict:
    """The query string WeChat adds to every call: signature, timestamp, nonce."""
    ts = str(int(time.time()) if timestamp is None else timestamp)
    signature = hashlib.sha1("".join(sorted([token, ts, nonce])).encode()).hexdigest()
    return {"signature": signature, "timestamp": ts, "nonce": nonce}


def text_xml(content: str, *, msg_id: str = "23456789012345678", openid: str = OPENID) -> bytes:
    return (
        f"<xml><ToUserName><![CDATA[{ACCOUNT}]]></ToUserName>"
        f"<FromUserName><![CDATA[{openid}]]></FromUserName>"
        f"<CreateTime>1700000000</CreateTime><MsgType><![CDATA[text]]></MsgType>"
        f"<Content><![CDATA[{content}]]></Content><MsgId>{msg_id}</MsgId></xml>"
    ).encode()


def subscribe_xml() -> bytes:
    return (
        f"<xml><ToUserName><![CDATA[{ACCOUNT}]]></ToUserName>"
        f"<FromUserName><![CDATA[{OPENID}]]></FromUserName>"
        f"<CreateTime>1700000005</CreateTime><MsgType><![CDATA[event]]></MsgType>"
        f"<Event><![CDATA[subscribe]]></Event></xml>"
    ).encode()


def image_xml(*, media_id: str = "MEDIA_IMG_1", msg_id: str = "1") -> bytes:
    return (
        f"<xml><ToUserName><![CDATA[{ACCOUNT}]]></ToUserName>"
        f"<FromUserName><![CDATA[{OPENID}]]></FromUserName>"
        f"<CreateTime>1700000006</CreateTime><MsgType><![CDATA[image]]></MsgType>"
        f"<PicUrl><![CDATA[http://example.invalid/p.jpg]]></PicUrl>"
        f"<MediaId><![CDATA[{media_id}]]></MediaId><MsgId>{msg_id}</MsgId></xml>"
    ).encode()


def event_xml(event: str, *, key: str | None = None, created: int = 1700000007) -> bytes:
    """An event push (`subscribe`, `unsubscribe`, `CLICK` with its EventKey, `VIEW`...)."""
    event_key = f"<EventKey><![CDATA[{key}]]></EventKey>" if key is not None else ""
    return (
        f"<xml><ToUserName><![CDATA[{ACCOUNT}]]></ToUserName>"
        f"<FromUserName><![CDATA[{OPENID}]]></FromUserName>"
        f"<CreateTime>{created}</CreateTime><MsgType><![CDATA[event]]></MsgType>"
        f"<Event><![CDATA[{event}]]></Event>{event_key}</xml>"
    ).encode()


def voice_xml(recognition: str | None, *, media_id: str = "MEDIA_VOICE_1") -> bytes:
    """A voice note; `Recognition` is there when speech recognition is on for the account."""
    heard = f"<Recognition><![CDATA[{recognition}]]></Recognition>" if recognition else ""
    return (
        f"<xml><ToUserName><![CDATA[{ACCOUNT}]]></ToUserName>"
        f"<FromUserName><![CDATA[{OPENID}]]></FromUserName>"
        f"<CreateTime>1700000008</CreateTime><MsgType><![CDATA[voice]]></MsgType>"
        f"<MediaId><![CDATA[{media_id}]]></MediaId><Format><![CDATA[amr]]></Format>"
        f"{heard}<MsgId>5678901234567890</MsgId></xml>"
    ).encode()


class FakeWeChatApi:
    """Issues numbered access tokens; the custom-send API accepts only the newest one,
    and `expire_tokens` makes it answer 42001 until a new token is fetched."""

    def __init__(self, appid: str, secret: str, expires_in: int = 7200) -> None:
        self.appid = appid
        self.secret = secret
        self.expires_in = expires_in
        self.token_fetches = 0
        self.current: str | None = None
        self.expired = False
        self.sent: list[Recorded] = []
        self.app = FastAPI()
        self.app.get("/cgi-bin/token")(self._token)
        self.app.post("/cgi-bin/message/custom/send")(self._custom_send)
        self.app.get("/cgi-bin/media/get")(self._media_get)
        self.app.post("/cgi-bin/media/upload")(self._media_upload)
        self.uploads: list[dict[str, Any]] = []  # temporary media uploads
        self.media: dict[str, tuple[bytes, str]] = {}  # media id → (bytes, content type)
        self.downloads: list[str] = []

    async def _media_get(self, request: Request) -> Response:
        """`/cgi-bin/media/get`: the file's bytes, or a JSON error as WeChat answers."""
        q = request.query_params
        if self.expired or q.get("access_token") != self.current:
            return JSONResponse({"errcode": 42001, "errmsg": "access_token expired"})
        media_id = q.get("media_id", "")
        if media_id not in self.media:
            return JSONResponse({"errcode": 40007, "errmsg": "invalid media_id"})
        self.downloads.append(media_id)
        data, content_type = self.media[media_id]
        return Response(data, media_type=content_type)

    async def _media_upload(self, request: Request) -> JSONResponse:
        """`/cgi-bin/media/upload?access_token=&type=image` (multipart field `media`):
        temporary media, answered `{"type", "media_id", "created_at"}`."""
        q = request.query_params
        if self.expired or q.get("access_token") != self.current:
            return JSONResponse({"errcode": 42001, "errmsg": "access_token expired"})
        form = await request.form()
        media = form.get("media")
        if media is None or isinstance(media, str):
            return JSONResponse({"errcode": 41005, "errmsg": "media data missing"})
        if q.get("type") not in ("image", "voice", "video", "thumb"):
            return JSONResponse({"errcode": 40004, "errmsg": "invalid media type"})
        data = await media.read()
        media_id = f"MEDIA_OUT_{len(self.uploads) + 1}"
        self.uploads.append({"type": q.get("type"), "data": data, "media_id": media_id})
        self.media[media_id] = (data, media.content_type or "")
        return JSONResponse({"type": q.get("type"), "media_id": media_id, "created_at": 1700000000})

    def expire_tokens(self) -> None:
        self.expired = True

    async def _token(self, request: Request) -> JSONResponse:
        q = request.query_params
        if q.get("grant_type") != "client_credential" or q.get("appid") != self.appid:
            return JSONResponse({"errcode": 40013, "errmsg": "invalid appid"})
        if q.get("secret") != self.secret:
            return JSONResponse({"errcode": 40001, "errmsg": "invalid credential"})
        self.token_fetches += 1
        self.current = f"ACCESS_TOKEN_{self.token_fetches}"
        self.expired = False
        return JSONResponse({"access_token": self.current, "expires_in": self.expires_in})

    async def _custom_send(self, request: Request) -> JSONResponse:
        body = await request.body()
        token = request.query_params.get("access_token", "")
        self.sent.append(
            Recorded(
                "/cgi-bin/message/custom/send",
                dict(request.headers),
                body,
                json.loads(body),
                dict(request.query_params),
            )
        )
        if token != self.current:
            return JSONResponse({"errcode": 40001, "errmsg": "invalid credential"})
        if self.expired:
            return JSONResponse({"errcode": 42001, "errmsg": "access_token expired"})
        return JSONResponse({"errcode": 0, "errmsg": "ok"})
