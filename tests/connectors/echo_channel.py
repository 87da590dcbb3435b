"""A channel defined outside `connectors/`, the way a plugin adds one: its own settings
section, webhook route and sender, registered with `connectors.registry.register`.

It reads `POST /webhooks/echo` with `{"id", "from", "text"}` signed by a shared secret
in `X-Echo-Secret`, and "sends" a reply by keeping it (a real channel calls its API)."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Header, Request
from pydantic import BaseModel, Field, SecretStr, ValidationError
from pydantic_settings import BaseSettings, SettingsConfigDict

from connectors.base import ChannelModule, Intake
from connectors.signatures import PayloadError, SignatureError, secrets_equal
from schemas import Channel, InboundMessage, Reply


class EchoSettings(BaseSettings):
    """The channel's own settings section (CLAWDESK_ECHO_*)."""

    model_config = SettingsConfigDict(env_prefix="CLAWDESK_ECHO_", extra="ignore", frozen=True)

    secret: SecretStr | None = None
    tenant: str = "demo"


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


CHANNEL = ChannelModule(name="echo", sender=send, settings_loader=EchoSettings, routes=routes)
