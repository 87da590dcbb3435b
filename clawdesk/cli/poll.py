"""`clawdesk poll <channel>`: read a channel by polling (logic: `connectors/poll.py`).

There is one command per channel whose module has a `PollSource` (`clawdesk poll
telegram`, `clawdesk poll email`, and any channel a plugin registers), found in the
channel registry when the command line is read, so no channel is named here.
"""

from __future__ import annotations

import asyncio
from typing import TYPE_CHECKING, Annotated

import typer
from typer import _click as click  # this Typer's own click, which TyperGroup is built on
from typer.core import TyperGroup

from clawdesk.settings import app_settings, connection_settings

if TYPE_CHECKING:
    from connectors.base import Channel, PollSource

MaxMessages = Annotated[
    int, typer.Option("--max-messages", help="stop after this many messages; 0 = run forever")
]


def pollable() -> dict[str, Channel]:
    """The registered channels that can be polled, by name."""
    # deferred: the connectors package loads every channel's client
    from connectors import registry

    return {c.name: c for c in registry.channels() if c.poll_source is not None}


def _start(channel: Channel, interval_s: float | None, max_messages: int) -> None:
    # deferred: the connectors package loads every channel's client
    from clawdesk.ops.logs import configure_logging
    from connectors.base import NotConfigured
    from connectors.poll import run

    source = channel.poll_source
    assert source is not None  # only pollable channels get a command
    configure_logging(app_settings().log_level)
    bootstrap = connection_settings().kafka_bootstrap_servers
    if not bootstrap:
        raise typer.BadParameter("KAFKA_BOOTSTRAP_SERVERS is not set (or use `clawdesk up`)")
    try:
        messages = source.open(app_settings(), channel.load_settings(), interval_s)
    except NotConfigured as err:
        raise typer.BadParameter(str(err)) from err
    count = asyncio.run(run(messages, bootstrap, max_messages or None))
    typer.echo(f"enqueued {count} messages", err=True)


def command(channel: Channel, source: PollSource) -> click.Command:
    """The `clawdesk poll <channel>` command: `--max-messages`, and `--interval` when
    the channel's polls are spaced by a setting."""
    one = typer.Typer(add_completion=False)
    if source.interval_setting is None:

        @one.command(channel.name, help=source.help)
        def poll_paced_by_provider(max_messages: MaxMessages = 0) -> None:
            _start(channel, None, max_messages)

    else:
        interval_help = f"seconds between polls; default {source.interval_setting}"

        @one.command(channel.name, help=source.help)
        def poll_every(
            max_messages: MaxMessages = 0,
            # A default, not Annotated: these annotations are strings the closure's
            # names cannot resolve.
            interval: float = typer.Option(-1.0, help=interval_help),
        ) -> None:
            _start(channel, None if interval < 0 else interval, max_messages)

    return typer.main.get_command(one)


class PollCommands(TyperGroup):
    """The `poll` group: a command for each pollable channel of the registry."""

    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted(pollable())

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        channel = pollable().get(cmd_name)
        if channel is None or channel.poll_source is None:
            return None
        return command(channel, channel.poll_source)


app = typer.Typer(
    help="Read a channel by polling (no public webhook URL needed).",
    no_args_is_help=True,
    cls=PollCommands,
)
