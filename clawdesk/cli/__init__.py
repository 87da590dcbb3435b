"""The `clawdesk` command line: one module per command group."""

from clawdesk.cli.commands import cli, main

__all__ = ["cli", "main"]
