"""A channel defined outside `connectors/`, the way a plugin adds one: its own settings
section, webhook route, sender and poll source, registered with
`connectors.registry.register`.

It reads `POST /webhooks/echo` with `{"id", "from", "text"}` signed by a shared secret
in `X-Echo-Secret`, and "sends" a reply by keeping it (a real channel calls its API).
Polled, it yields one message per name in CLAWDESK_ECHO_INBOX."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Annotated, Any

from fastapi import APIRouter, Header, Request
from pydantic import BaseModel, Field, SecretStr, ValidationError
from pydantic_settings import BaseSettings, SettingsConfigDict

from connectors.base import ChannelModule, Intake, NotConfigured, PollSource
from connectors.signatures import PayloadError, SignatureError, secrets_equal
from schemas import Channel, InboundMessage, Reply


class EchoSettings(BaseSettings):
    """The channel's own settings section (CLAWDESK_ECHO_*)."""

    model_config = SettingsConfigDict(env_prefix="CLAWDESK_ECHO_", extra="ignore", frozen=True)

    secret: SecretStr | None = Field(default=None, description="shared webhook secret")
    tenant: str = Field(default="demo", description="tenant of echo messages")
    inbox: list[str] = Field(default_factory=list, description="senders a poll reads")
    poll_s: float = Field(default=1.0, description="seconds between polls")


class _Message(BaseModel):
    id: str = Field(min_length=1, max_length=100)
    sender: str = Field(alias="from", min_length=1, max_length=100)
    text: str = Field(min_length=1, max_length=1000)


SENT: list[Reply] = []


async def send(reply: Reply) -> str:
    """Keep the reply; its provider id is its position."""
    SENT.append(reply)
    return f"echo-{len(SENT)}"


def routes(intake: Intake) -> APIRouter:
    """`POST /webhooks/echo`."""
    router = APIRouter()

    @router.post("/webhooks/echo")
    async def echo_message(
        request: Request, secret: Annotated[str | None, Header(alias="X-Echo-Secret")] = None
    ) -> dict[str, int]:
        settings = EchoSettings()
        if settings.secret is None:
            raise intake.disabled("echo")
        with intake.rejecting("echo"):
            if not secrets_equal(secret, settings.secret.get_secret_value()):
                raise SignatureError("bad secret")
        body = await intake.read_body(request, 4096, "echo")
        with intake.rejecting("echo"):
            try:
                message = _Message.model_validate_json(body)
            except ValidationError as err:
                raise PayloadError("malformed echo message") from err
        event = InboundMessage(
            conversation_id=f"echo:{message.sender}",
            tenant_id=settings.tenant,
            channel=Channel("echo"),
            channel_message_id=message.id,
            customer_id=message.sender,
            text=message.text,
        )
        await intake.accept(request, "echo", [event])
        return {"enqueued": 1}

    return router


POLLED_EVERY: list[float | None] = []


async def poll(
    app_settings: Any, settings: EchoSettings, interval_s: float | None
) -> AsyncIterator[InboundMessage]:
    """One message per sender of the inbox (`clawdesk poll echo`)."""
    POLLED_EVERY.append(interval_s)
    for n, sender in enumerate(settings.inbox):
        yield InboundMessage(
            conversation_id=f"echo:{sender}",
            tenant_id=settings.tenant,
            channel=Channel("echo"),
            channel_message_id=f"polled-{n}",
            customer_id=sender,
            text="hello",
        )


def open_poll(
    app_settings: Any, settings: EchoSettings, interval_s: float | None
) -> AsyncIterator[InboundMessage]:
    """The poll, refused before it starts when the inbox is unset."""
    if not settings.inbox:
        raise NotConfigured("CLAWDESK_ECHO_INBOX is not set")
    return poll(app_settings, settings, interval_s)


CHANNEL = ChannelModule(
    name="echo",
    sender=send,
    settings_loader=EchoSettings,
    routes=routes,
    poll_source=PollSource(
        open=open_poll, help="Read the echo inbox.", interval_setting="CLAWDESK_ECHO_POLL_S"
    ),
)
