"""`clawdesk poll telegram|email`: read a channel by polling (logic: `connectors/poll.py`)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import TYPE_CHECKING, Annotated

import typer

from clawdesk.settings import app_settings, channel_settings, connection_settings

if TYPE_CHECKING:
    from schemas import InboundMessage

app = typer.Typer(help="Read a channel by polling (no public webhook URL needed).")

MaxMessages = Annotated[
    int, typer.Option("--max-messages", help="stop after this many messages; 0 = run forever")
]


def _start(source: AsyncIterator[InboundMessage], max_messages: int) -> None:
    # deferred: the connectors package loads every channel's client
    from clawdesk.ops.logs import configure_logging
    from connectors.poll import run

    configure_logging(app_settings().log_level)
    bootstrap = connection_settings().kafka_bootstrap_servers
    if not bootstrap:
        raise typer.BadParameter("KAFKA_BOOTSTRAP_SERVERS is not set (or use `clawdesk up`)")
    count = asyncio.run(run(source, bootstrap, max_messages or None))
    typer.echo(f"enqueued {count} messages", err=True)


@app.command("telegram")
def poll_telegram(max_messages: MaxMessages = 0) -> None:
    """Long-poll the Telegram Bot API (getUpdates) and enqueue each text message."""
    # deferred: the connectors package loads every channel's client
    from connectors.poll import telegram_source

    _start(telegram_source(app_settings(), channel_settings()), max_messages)


@app.command("email")
def poll_email(
    max_messages: MaxMessages = 0,
    interval: Annotated[
        float, typer.Option(help="seconds between polls; default CLAWDESK_IMAP_POLL_S")
    ] = -1.0,
) -> None:
    """Poll the IMAP mailbox and enqueue each new mail's text."""
    # deferred: the connectors package loads every channel's client
    from connectors.poll import email_source

    interval_s = None if interval < 0 else interval
    _start(email_source(app_settings(), channel_settings(), interval_s), max_messages)
