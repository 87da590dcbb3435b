"""The `clawdesk` command line: the root app and the table of its command groups.

Each group is one module of this package holding thin Typer commands (parse the
options, call the logic in its subpackage, print). To add a group, write the module
with an `app = typer.Typer(...)` and add one row to `GROUPS`.
"""

from __future__ import annotations

from dataclasses import dataclass

import typer

from clawdesk.cli import (
    bench,
    export,
    kb,
    nlu,
    poll,
    replay,
    schemas,
    soak,
    system,
    tenant,
    topics,
)
from clawdesk.cli import eval as eval_group


@dataclass(frozen=True)
class Group:
    """One row of the table: a module's Typer app, under `name` or (None) at the root."""

    name: str | None
    app: typer.Typer
    module: str


# Every command of `clawdesk`, in the order `clawdesk --help` lists them. A row named
# None puts the app's commands at the root (`clawdesk up`, `clawdesk soak`).
GROUPS: tuple[Group, ...] = (
    Group(None, system.app, "clawdesk/cli/system.py"),  # up worker status exporter gateway migrate
    Group("kb", kb.app, "clawdesk/cli/kb.py"),
    Group("schemas", schemas.app, "clawdesk/cli/schemas.py"),
    Group("eval", eval_group.app, "clawdesk/cli/eval.py"),
    Group("nlu", nlu.app, "clawdesk/cli/nlu.py"),
    Group("bench", bench.app, "clawdesk/cli/bench.py"),
    Group("poll", poll.app, "clawdesk/cli/poll.py"),
    Group("tenant", tenant.app, "clawdesk/cli/tenant.py"),
    Group(None, soak.app, "clawdesk/cli/soak.py"),  # soak
    Group("replay", replay.app, "clawdesk/cli/replay.py"),
    Group("export", export.app, "clawdesk/cli/export.py"),
    Group("topics", topics.app, "clawdesk/cli/topics.py"),
)


def build() -> typer.Typer:
    """The root `clawdesk` app with every row of `GROUPS` registered."""
    root = typer.Typer(
        help="clawdesk: 7x24 AI customer service on a Kafka pipeline.", no_args_is_help=True
    )
    for group in GROUPS:
        if group.name is None:
            root.registered_commands.extend(group.app.registered_commands)
        else:
            root.add_typer(group.app, name=group.name)
    return root


cli = build()


def main() -> None:
    """Entry point of the `clawdesk` script (`clawdesk.cli:main`)."""
    cli()


__all__ = ["GROUPS", "Group", "build", "cli", "main"]
