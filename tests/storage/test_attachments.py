"""Customers' files are fetched through each provider's media API (local fakes), capped,
sniffed, stored in the filesystem object store and recorded once; refused files leave
nothing stored."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from prometheus_client import REGISTRY

from clawdesk.settings import AppSettings
from clawdesk.storage import FilesystemStore, attachments, db, open_store, uploads
from clawdesk.storage.attachments import Refusal
from connectors import wechat
from connectors.config import ChannelSettings
from schemas import Attachment, Channel, InboundMessage, MessageKind
from tests.connectors.conftest import (
    TELEGRAM_TOKEN,
    WECHAT_APPID,
    WECHAT_SECRET,
    WHATSAPP_TOKEN,
    make_channels,
)
from tests.fakes import media
from tests.fakes.channels import telegram as tg
from tests.fakes.channels import wechat as wx
from tests.fakes.channels import whatsapp as wa
from tests.fakes.channels.server import serve


@pytest.fixture()
async def pool(database_url: str) -> AsyncIterator[Any]:
    pool = await db.open_pool(database_url)
    yield pool
    await pool.close()


@pytest.fixture()
def settings(tmp_path: Path) -> AppSettings:
    return AppSettings(_env_file=None, data_dir=tmp_path, attachment_max_bytes=50_000)  # type: ignore[call-arg]


@pytest.fixture()
def store(settings: AppSettings) -> FilesystemStore:
    found = open_store("", settings.data_dir)
    assert isinstance(found, FilesystemStore)
    return found


@pytest.fixture(scope="module")
def servers() -> Iterator[tuple[tg.FakeBotApi, wa.FakeGraphApi, wx.FakeWeChatApi, ChannelSettings]]:
    bot, graph, wechat_api = (
        tg.FakeBotApi(TELEGRAM_TOKEN),
        wa.FakeGraphApi(WHATSAPP_TOKEN),
        wx.FakeWeChatApi(WECHAT_APPID, WECHAT_SECRET),
    )
    with serve(bot.app) as tg_base, serve(graph.app) as wa_base, serve(wechat_api.app) as wx_base:
        channels = make_channels(
            telegram_api_base=tg_base, whatsapp_api_base=wa_base, wechat_api_base=wx_base
        )
        yield bot, graph, wechat_api, channels


@pytest.fixture()
def providers(servers: Any) -> Any:
    """The fake providers, forgetting what an earlier test gave or fetched."""
    bot, graph, wechat_api, _ = servers
    for fake in (bot, graph, wechat_api):
        fake.downloads.clear()
    bot.files.clear()
    graph.media.clear()
    wechat_api.media.clear()
    wechat_api.token_fetches = 0
    wechat.TOKENS.invalidate(WECHAT_APPID)
    return servers


def message(
    channel: Channel, ref: str, *, kind: str = "image", declared: int | None = None
) -> InboundMessage:
    return InboundMessage(
        conversation_id=f"{channel.value}:c1",
        tenant_id="demo",
        channel=channel,
        channel_message_id=f"{channel.value}-{ref}",
        customer_id="c1",
        text="",
        kind=MessageKind.MEDIA,
        attachments=[
            Attachment(
                kind=kind, provider_ref=ref, declared_type="image/jpeg", declared_bytes=declared
            )  # type: ignore[arg-type]
        ],
    )


def stored_files(root: Path) -> list[Path]:
    return [p for p in root.rglob("*") if p.is_file()] if root.exists() else []


def counted(channel: str, outcome: str) -> float:
    labels = {"channel": channel, "kind": "image", "outcome": outcome}
    return REGISTRY.get_sample_value("clawdesk_attachments_total", labels) or 0.0


async def test_a_telegram_photo_is_fetched_by_get_file_sniffed_and_stored_once(
    pool: Any, settings: AppSettings, store: FilesystemStore, providers: Any
) -> None:
    bot, _, _, channels = providers
    photo = media.png()
    bot.files["AgAC-photo"] = photo
    msg = message(Channel.TELEGRAM, "AgAC-photo", declared=len(photo))
    await db.record_inbound(pool, msg)

    (taken,) = await attachments.take(
        msg, pool=pool, store=store, settings=settings, channels=channels
    )
    again = await attachments.take(
        msg, pool=pool, store=store, settings=settings, channels=channels
    )

    assert taken.refused is None
    stored = taken.attachment
    # The file server said application/octet-stream; the bytes say PNG.
    assert (stored.content_type, stored.size_bytes) == ("image/png", len(photo))
    assert stored.object_key and stored.object_key.endswith(".png")
    assert await store.get(stored.object_key) == photo
    assert again == [taken]  # a redelivered message fetches and stores nothing twice
    assert len(bot.downloads) == 1
    (row,) = await attachments.of_conversation(pool, msg.conversation_id)
    assert (row.id, row.message_id, row.refused) == (stored.attachment_id, msg.event_id, None)


async def test_a_whatsapp_image_is_fetched_through_its_media_url(
    pool: Any, settings: AppSettings, store: FilesystemStore, providers: Any
) -> None:
    _, graph, _, channels = providers
    graph.media["1166231088291398"] = (media.jpeg_header_only(), "image/jpeg")
    msg = message(Channel.WHATSAPP, "1166231088291398")

    (taken,) = await attachments.take(
        msg, pool=pool, store=store, settings=settings, channels=channels
    )

    assert taken.refused is None and taken.attachment.content_type == "image/jpeg"
    assert graph.downloads == ["1166231088291398"]


async def test_a_wechat_voice_note_is_fetched_by_media_get_with_a_fresh_token(
    pool: Any, settings: AppSettings, store: FilesystemStore, providers: Any
) -> None:
    _, _, wechat_api, channels = providers
    wechat_api.media["MEDIA_VOICE_1"] = (media.AMR, "audio/amr")
    msg = message(Channel.WECHAT, "MEDIA_VOICE_1", kind="voice")
    async with httpx.AsyncClient() as http:
        await wechat.TOKENS.get(http, channels)  # a token is cached...
    wechat_api.expire_tokens()  # ...and WeChat retires it

    (taken,) = await attachments.take(
        msg, pool=pool, store=store, settings=settings, channels=channels
    )

    assert taken.refused is None and taken.attachment.content_type == "audio/amr"
    assert wechat_api.token_fetches == 2


async def test_a_file_declared_over_the_cap_is_refused_without_downloading(
    pool: Any, settings: AppSettings, store: FilesystemStore, providers: Any
) -> None:
    bot, _, _, channels = providers
    bot.files["big"] = media.png() + b"\x00" * 60_000
    msg = message(Channel.TELEGRAM, "big", declared=60_100)
    before = counted("telegram", "too_large")

    (taken,) = await attachments.take(
        msg, pool=pool, store=store, settings=settings, channels=channels
    )

    assert taken.refused is Refusal.TOO_LARGE
    assert bot.downloads == [] and stored_files(store.root) == []
    assert counted("telegram", "too_large") == before + 1
    (row,) = await attachments.of_conversation(pool, msg.conversation_id)
    assert (row.refused, row.object_key) == ("too_large", None)


async def test_a_file_that_turns_out_over_the_cap_is_dropped_mid_stream(
    pool: Any, settings: AppSettings, store: FilesystemStore, providers: Any
) -> None:
    _, _, wechat_api, channels = providers
    wechat_api.media["HUGE"] = (media.jpeg_header_only() + b"\x00" * 80_000, "image/jpeg")
    msg = message(Channel.WECHAT, "HUGE")  # WeChat tells no size up front

    (taken,) = await attachments.take(
        msg, pool=pool, store=store, settings=settings, channels=channels
    )

    assert taken.refused is Refusal.TOO_LARGE and stored_files(store.root) == []


@pytest.mark.parametrize("payload", [media.EXECUTABLE, media.HTML])
async def test_a_file_whose_bytes_are_not_an_allowed_type_is_refused(
    pool: Any, settings: AppSettings, store: FilesystemStore, providers: Any, payload: bytes
) -> None:
    _, graph, _, channels = providers
    graph.media["disguised"] = (payload, "image/jpeg")  # the header lies
    msg = message(Channel.WHATSAPP, "disguised")

    (taken,) = await attachments.take(
        msg, pool=pool, store=store, settings=settings, channels=channels
    )

    assert taken.refused is Refusal.TYPE_NOT_ALLOWED and stored_files(store.root) == []


async def test_an_unknown_media_id_is_recorded_as_gone(
    pool: Any, settings: AppSettings, store: FilesystemStore, providers: Any
) -> None:
    _, _, _, channels = providers

    taken = await attachments.take(
        message(Channel.WECHAT, "EXPIRED_ID"),
        pool=pool,
        store=store,
        settings=settings,
        channels=channels,
    )

    assert [t.refused for t in taken] == [Refusal.GONE]


async def test_the_filesystem_store_refuses_keys_outside_its_root(tmp_path: Path) -> None:
    store = FilesystemStore(tmp_path / "objects")
    for key in ("../escape", "/etc/passwd", "a//b", "a/../../b", "a b"):
        with pytest.raises(ValueError, match="not a valid object key"):
            await store.put(key, b"x", "text/plain")
    await store.put("demo/2026/ok.png", b"data", "image/png")
    assert await store.get("demo/2026/ok.png") == b"data"
    assert [p.name for p in (tmp_path / "objects").rglob("*") if p.is_file()] == ["ok.png"]
    with pytest.raises(KeyError):
        await store.get("demo/missing.png")


def test_a_signed_link_holds_until_it_expires_and_only_for_its_file() -> None:
    secret = b"k" * 32
    path = attachments.signed_path(secret, "att-1", 300, now=1_000)
    expires = int(path.split("expires=")[1].split("&")[0])
    signature = path.split("signature=")[1]

    assert attachments.link_holds(secret, "att-1", expires, signature, now=1_100)
    assert not attachments.link_holds(secret, "att-1", expires, signature, now=1_301)
    assert not attachments.link_holds(secret, "att-2", expires, signature, now=1_100)
    assert not attachments.link_holds(b"x" * 32, "att-1", expires, signature, now=1_100)


def test_a_file_url_names_the_store_directory(tmp_path: Path) -> None:
    shared = tmp_path / "shared dir" / "attachments"
    store = open_store(shared.as_uri(), tmp_path / "worker-1")
    assert isinstance(store, FilesystemStore) and store.root == shared
    with pytest.raises(ValueError, match="unsupported"):
        open_store("ftp://files.example/x", tmp_path)


async def test_an_image_uploaded_to_the_gateway_is_taken_as_stored_not_fetched(
    pool: Any, settings: AppSettings, store: FilesystemStore
) -> None:
    photo = media.png()
    msg = message(Channel.WEB, "upload:cm-1")
    att_id = uploads.upload_id(msg.conversation_id, "cm-1")
    key = uploads.upload_key(msg.tenant_id, msg.received_at, att_id, "image/png")
    uploaded = msg.attachments[0].model_copy(
        update={"attachment_id": att_id, "object_key": key, "content_type": "image/png"}
    )
    msg = msg.model_copy(update={"attachments": [uploaded]})
    owner = uploads.Owner(msg.event_id, msg.conversation_id, msg.tenant_id, "web")
    assert await uploads.store_image(pool, store, owner, uploaded, photo)
    await db.record_inbound(pool, msg)

    # The web channel fetches no files: without the upload's row it would be refused.
    (taken,) = await attachments.take(msg, pool=pool, store=store, settings=settings)

    assert taken.refused is None
    assert taken.attachment.object_key == key and await store.get(key) == photo
