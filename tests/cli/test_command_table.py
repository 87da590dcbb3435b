"""The table in `clawdesk/cli/__init__.py` and what `clawdesk --help` lists agree."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
from typer.testing import CliRunner

from clawdesk.cli import GROUPS, cli

ROOT = Path(__file__).resolve().parents[2]


def _table_names() -> list[str]:
    """Every top-level name the table gives: group names, and each root row's commands."""
    names: list[str] = []
    for group in GROUPS:
        if group.name is None:
            names += [c.name or c.callback.__name__ for c in group.app.registered_commands]  # type: ignore[union-attr]
        else:
            names.append(group.name)
    return names


def _help_names() -> list[str]:
    """The command names `python -m clawdesk.cli --help` prints, in a subprocess."""
    done = subprocess.run(
        [sys.executable, "-m", "clawdesk.cli", "--help"],
        capture_output=True,
        text=True,
        timeout=120,
        env={"COLUMNS": "200", "PATH": "", "PYTHONPATH": str(ROOT), "TERM": "dumb"},
        cwd=ROOT,
    )
    assert done.returncode == 0, done.stderr
    section = done.stdout.split("Commands")[1].split("╰")[0]
    # "│ name   help…"; a wrapped help line goes on under the help column: "│        …"
    return [line[2:].split()[0] for line in section.splitlines()[1:] if line[2:3].strip()]


def test_the_table_and_the_help_list_the_same_commands() -> None:
    assert sorted(_table_names()) == sorted(_help_names())


# The commands `clawdesk` has always had: dropping one from the table fails here.
KNOWN = {"up", "worker", "status", "exporter", "gateway", "migrate", "soak", "kb", "schemas",
         "eval", "nlu", "bench", "poll", "tenant", "replay", "export", "topics"}  # fmt: skip


def test_the_table_keeps_every_known_command() -> None:
    assert set(_table_names()) == KNOWN


def test_every_table_row_names_its_module() -> None:
    for group in GROUPS:
        assert (ROOT / group.module).is_file(), group.module
        assert group.app.info.help, f"{group.module}: a Typer app with no help"


@pytest.mark.parametrize("name", _table_names())
def test_every_command_help_exits_0(name: str) -> None:
    result = CliRunner().invoke(cli, [name, "--help"])
    assert result.exit_code == 0, result.output
    assert "Usage:" in result.output


@pytest.mark.parametrize("name", [g.name for g in GROUPS if g.name])
def test_every_sub_command_help_exits_0(name: str) -> None:
    group = next(g for g in GROUPS if g.name == name)
    subs = [c.name or c.callback.__name__ for c in group.app.registered_commands]  # type: ignore[union-attr]
    subs += [t.name for t in group.app.registered_groups if t.name]
    for sub in subs:
        result = CliRunner().invoke(cli, [name, sub, "--help"])
        assert result.exit_code == 0, f"clawdesk {name} {sub} --help: {result.output}"
