"""The contract of a channel: one module in `connectors/` that owns both directions.

A channel module builds one `ChannelModule` (named `CHANNEL`) saying how to read its
settings, which webhook routes it serves (a router the gateway mounts, built on the
`Intake` the gateway lends it), how it sends a reply, and, where the channel has them,
how it fetches a customer's file, sends one (an agent's image), polls its provider
(`PollSource`, which `clawdesk poll <channel>` finds here), or
refuses a reply the channel would not take now. `connectors.registry` lists the
channels; the gateway, the dispatcher and ingest ask the registry, never a channel by
name.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable, Mapping, Sequence
from contextlib import AbstractContextManager
from dataclasses import dataclass
from typing import Any, Protocol

from fastapi import APIRouter, Request

from schemas import Attachment, DeliveryReceipt, InboundMessage, Reply


class Intake(Protocol):
    """What the gateway lends a channel's webhook routes: its settings, the shared
    refusals, and the one way in (every check passed, then the broker's ack)."""

    def settings(self, request: Request) -> Any:
        """The channel settings of the app serving the request."""
        ...

    def default_tenant(self, request: Request) -> str:
        """The tenant a channel without a tenant of its own writes to."""
        ...

    def count(self, channel: str, outcome: str) -> None:
        """Count a webhook call's outcome (clawdesk_gateway_webhooks_total)."""
        ...

    def error(self, status: int, message: str) -> Exception:
        """The 4xx/5xx answer `{"error": message}` (raise it)."""
        ...

    def disabled(self, channel: str) -> Exception:
        """The 404 of a channel this deployment has not configured (raise it)."""
        ...

    def rejecting(self, channel: str, *, payload_status: int = 400) -> AbstractContextManager[None]:
        """Turn a connector's refusal (signature, payload, tenant) into its 4xx."""
        ...

    async def read_body(self, request: Request, limit: int, channel: str) -> bytes:
        """The body, refused with 413 past `limit` bytes."""
        ...

    async def require_tenants(self, request: Request, tenants: set[str], channel: str) -> None:
        """404 unless every tenant exists."""
        ...

    async def accept(
        self,
        request: Request,
        channel: str,
        messages: Sequence[InboundMessage],
        receipts: Sequence[DeliveryReceipt] = (),
    ) -> None:
        """Check tenants and rate limits, log, then enqueue; return once acknowledged."""
        ...

    async def accept_and_await(
        self, request: Request, channel: str, message: InboundMessage, timeout: float
    ) -> Reply | None:
        """Accept the message and wait up to `timeout` s for its reply (a channel that
        answers in the webhook's response, like WeChat)."""
        ...


Send = Callable[[Reply], Awaitable[str]]
# (reply, its files read from the store) -> the provider's message id of the first part
SendMedia = Callable[[Reply, Sequence[Any]], Awaitable[str]]
Routes = Callable[[Intake], APIRouter]
FetchMedia = Callable[..., Awaitable[Any]]  # (attachment, *, max_bytes, settings) -> Fetched
# (app settings, own settings, seconds between polls or None: the channel's default)
Poll = Callable[[Any, Any, float | None], AsyncIterator[InboundMessage]]
ReplyRefusal = Callable[[Mapping[str, str], Any], str | None]


class NotConfigured(RuntimeError):
    """A channel part cannot start: a setting it needs is unset (the message names it)."""


@dataclass(frozen=True)
class PollSource:
    """How a channel is read by polling its provider (`clawdesk poll <channel>`).

    `open` yields the channel's messages forever; it raises `NotConfigured` when a
    credential it needs is unset. `interval_setting` names the setting that spaces the
    polls when the command gets no `--interval` (None: the channel takes no interval,
    as a long poll paces itself).
    """

    open: Poll
    help: str
    interval_setting: str | None = None


class Channel(Protocol):
    """What every channel module provides (`ChannelModule` is the usual way)."""

    @property
    def name(self) -> str:
        """The channel's name: `schemas.Channel` value, topic metadata, metric label."""
        ...

    def load_settings(self) -> Any:
        """The channel's settings section, read from the environment."""
        ...

    def router(self, intake: Intake) -> APIRouter | None:
        """The webhook routes the gateway mounts (None: the channel has none)."""
        ...

    @property
    def poll_source(self) -> PollSource | None:
        """How `clawdesk poll` reads the channel (None: it is not pollable)."""
        ...

    async def send(self, reply: Reply) -> str:
        """Deliver a reply; the provider's message id."""
        ...

    async def fetch_media(self, attachment: Attachment, max_bytes: int, settings: Any) -> Any:
        """A customer's file (`connectors.media.Fetched`); raises if the channel has none."""
        ...

    def refuses_reply(self, metadata: Mapping[str, str], settings: Any) -> str | None:
        """Why a reply to this customer cannot go now (None: it can)."""
        ...

    @property
    def sends_media(self) -> bool:
        """Whether the channel can send files (else a reply's files go as links)."""
        ...

    async def send_media(self, reply: Reply, files: Sequence[Any]) -> str:
        """Deliver a reply with its files (`connectors.media.OutgoingFile`), the text as
        their caption; raises if the channel sends none."""
        ...


@dataclass(frozen=True)
class ChannelModule:
    """A channel's parts, as its module declares them."""

    name: str
    sender: Send
    settings_loader: Callable[[], Any]
    routes: Routes | None = None
    media_fetcher: FetchMedia | None = None
    poll_source: PollSource | None = None
    reply_refusal: ReplyRefusal | None = None
    media_sender: SendMedia | None = None

    @property
    def has_media(self) -> bool:
        """Whether customers can send files on the channel."""
        return self.media_fetcher is not None

    @property
    def sends_media(self) -> bool:
        """Whether the channel can send files."""
        return self.media_sender is not None

    async def send_media(self, reply: Reply, files: Sequence[Any]) -> str:
        """Deliver a reply with its files through the channel."""
        if self.media_sender is None:
            raise LookupError(f"the {self.name} channel sends no files")
        return await self.media_sender(reply, files)

    def load_settings(self) -> Any:
        """The channel's settings section, read from the environment."""
        return self.settings_loader()

    def router(self, intake: Intake) -> APIRouter | None:
        """The channel's webhook routes on the gateway's intake."""
        return self.routes(intake) if self.routes is not None else None

    async def send(self, reply: Reply) -> str:
        """Deliver a reply through the channel."""
        return await self.sender(reply)

    async def fetch_media(self, attachment: Attachment, max_bytes: int, settings: Any) -> Any:
        """Fetch a customer's file from the provider."""
        if self.media_fetcher is None:
            raise LookupError(f"the {self.name} channel carries no files")
        return await self.media_fetcher(attachment, max_bytes=max_bytes, settings=settings)

    def refuses_reply(self, metadata: Mapping[str, str], settings: Any) -> str | None:
        """Why a reply cannot go now, if the channel says so."""
        return self.reply_refusal(metadata, settings) if self.reply_refusal else None
