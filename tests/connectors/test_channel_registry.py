"""A channel is one module and one registration: the gateway mounts its routes, its
settings come from its own section, and replies on it go through its sender."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest
from typer.testing import CliRunner

import clawdesk.cli.poll as poll_command
import connectors.poll
from clawdesk.cli import cli
from clawdesk.settings import ConnectionSettings
from connectors import registry, send_reply
from connectors.config import ChannelSettings
from schemas import Channel, InboundMessage, Reply, utc_now

from . import echo_channel
from .conftest import open_hooks


@pytest.fixture
def echo(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    monkeypatch.setenv("CLAWDESK_ECHO_SECRET", "echo-secret")
    registry.register(echo_channel.CHANNEL)
    echo_channel.SENT.clear()
    yield
    registry.unregister("echo")


async def test_a_channel_registered_from_a_module_gets_routes_settings_and_sender(
    echo: None, channels: ChannelSettings
) -> None:
    async with open_hooks(channels) as hooks:  # an app created after the registration
        forged = await hooks.client.post(
            "/webhooks/echo",
            json={"id": "1", "from": "ana", "text": "hi"},
            headers={"X-Echo-Secret": "guess"},
        )
        malformed = await hooks.client.post(
            "/webhooks/echo", content=b"{", headers={"X-Echo-Secret": "echo-secret"}
        )
        taken = await hooks.client.post(
            "/webhooks/echo",
            json={"id": "m-1", "from": "ana", "text": "where is my order?"},
            headers={"X-Echo-Secret": "echo-secret"},
        )
        inbound = hooks.inbound()

    assert (forged.status_code, malformed.status_code) == (401, 400)
    assert taken.json() == {"enqueued": 1}
    (message,) = inbound
    assert message.channel == Channel("echo") and message.channel.value == "echo"
    assert InboundMessage.from_bytes(message.to_bytes()) == message  # it travels as events do
    settings = registry.channel("echo").load_settings()
    assert settings.secret.get_secret_value() == "echo-secret"

    reply = Reply(
        **message.lineage(),
        reply_id="r-1",
        in_reply_to=message.event_id,
        customer_id="ana",
        text="Order #1002 ships today.",
        language="en",
        intent="order_status",
        confidence=0.9,
        received_at=utc_now(),
    )
    assert await send_reply(reply) == "echo-1"  # the dispatcher's way out
    assert echo_channel.SENT == [reply]


def test_clawdesk_poll_finds_a_registered_channels_poll_source(
    echo: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    forwarded: list[InboundMessage] = []

    async def run(source: AsyncIterator[InboundMessage], bootstrap: str, limit: int | None) -> int:
        # The broker side is connectors/poll.py's (tests/connectors/test_poll.py).
        assert (bootstrap, limit) == ("fake:9092", 5)
        forwarded.extend([m async for m in source])
        return len(forwarded)

    monkeypatch.setattr(connectors.poll, "run", run)
    monkeypatch.setattr(
        poll_command,
        "connection_settings",
        lambda: ConnectionSettings(_env_file=None, kafka_bootstrap_servers="fake:9092"),  # type: ignore[call-arg]
    )
    echo_channel.POLLED_EVERY.clear()
    listed = CliRunner().invoke(cli, ["poll", "--help"])
    unset = CliRunner().invoke(cli, ["poll", "echo"])
    monkeypatch.setenv("CLAWDESK_ECHO_INBOX", '["ana", "bo"]')
    done = CliRunner().invoke(cli, ["poll", "echo", "--max-messages", "5", "--interval", "2"])

    assert "echo" in listed.output and "telegram" in listed.output
    assert unset.exit_code == 2 and "CLAWDESK_ECHO_INBOX is not set" in unset.output
    assert done.exit_code == 0, done.output
    assert [m.customer_id for m in forwarded] == ["ana", "bo"]
    assert echo_channel.POLLED_EVERY == [2.0]
    assert "enqueued 2 messages" in done.output


def test_an_unregistered_name_is_not_a_channel_and_names_are_not_taken_twice(echo: None) -> None:
    with pytest.raises(ValueError):
        Channel("fax")
    with pytest.raises(ValueError, match="registered already"):
        registry.register(
            echo_channel.CHANNEL.__class__(
                name="telegram", sender=echo_channel.send, settings_loader=dict
            )
        )
    with pytest.raises(ValueError, match="built-in"):
        registry.unregister("telegram")


def test_the_gateway_names_no_channel() -> None:
    """The gateway mounts what the registry lists: its code imports no channel module."""
    gateway = Path(__file__).parents[2] / "clawdesk" / "gateway"
    builtin = [c.name for c in registry.BUILTIN]
    for source in gateway.glob("*.py"):
        text = source.read_text()
        for name in builtin:
            assert f"from connectors.{name} import" not in text, source.name
            assert f"connectors import {name}" not in text, source.name
            assert f"{name}." not in text.replace("email.message", ""), (source.name, name)
