"""Writes docs/configuration.md from the settings classes: `python -m clawdesk.settings_doc`.

One table per class of `clawdesk.settings`: environment variable, type, default and
the field's description. tests/test_settings_doc.py fails when the committed file and
a fresh one differ, so the reference cannot drift from the code.
"""

from __future__ import annotations

import re
import sys
from pathlib import Path
from typing import Any

from pydantic.fields import FieldInfo
from pydantic_core import PydanticUndefined
from pydantic_settings import BaseSettings

from clawdesk.settings import AppSettings, ChannelSettings, ConnectionSettings

CLASSES: tuple[type[BaseSettings], ...] = (ConnectionSettings, AppSettings, ChannelSettings)
OUT = Path(__file__).resolve().parents[1] / "docs" / "configuration.md"
REGENERATE = "python -m clawdesk.settings_doc"

HEADER = f"""# Configuration reference

Every setting is read from the environment (or a `.env` file in the working
directory) by `clawdesk/settings.py`. This file is generated from those classes: do
not edit it by hand, change the `Field(description=…)` in settings.py and run
`{REGENERATE}`.
"""


def env_name(cls: type[BaseSettings], name: str, info: FieldInfo) -> str:
    """The variable a field is read from: its alias, else the class's prefix + NAME."""
    alias = info.validation_alias or info.alias
    if isinstance(alias, str):
        return alias.upper()
    return f"{cls.model_config.get('env_prefix', '')}{name}".upper()


def type_name(annotation: Any) -> str:
    """A short type: `int`, `Path | None`, `list[str]`."""
    text = annotation.__name__ if isinstance(annotation, type) else str(annotation)
    text = re.sub(r"\b(?:typing|pathlib|pydantic\.types|clawdesk\.settings)\.", "", text)
    return text.replace("NoneType", "None")


def default_text(info: FieldInfo) -> str:
    """The default as it would be written in the environment; secrets are never shown."""
    if info.default_factory is not None:
        value: Any = info.default_factory()  # type: ignore[call-arg]
    elif info.default is PydanticUndefined:
        return "(required)"
    else:
        value = info.default
    if value is None or value == "":
        return "(empty)"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, list | tuple | set | dict) and not value:
        return "(empty)"
    if isinstance(value, Path) and value.is_relative_to(Path.home()):
        # The same on every machine: a home directory is not part of the default.
        return f"`~/{value.relative_to(Path.home()).as_posix()}`"
    return f"`{value}`"


def cell(text: str) -> str:
    """Text safe inside a Markdown table cell."""
    return " ".join(text.split()).replace("|", "\\|")


def table(cls: type[BaseSettings]) -> str:
    """The Markdown section of one settings class."""
    doc = (cls.__doc__ or "").strip().splitlines()[0]
    lines = [
        f"## {cls.__name__}",
        "",
        doc,
        "",
        "| Variable | Type | Default | Description |",
        "| --- | --- | --- | --- |",
    ]
    for name, info in cls.model_fields.items():
        lines.append(
            f"| `{env_name(cls, name, info)}` | `{cell(type_name(info.annotation))}` "
            f"| {cell(default_text(info))} | {cell(info.description or '')} |"
        )
    return "\n".join(lines)


def render() -> str:
    """The whole of docs/configuration.md."""
    return "\n\n".join([HEADER.rstrip(), *(table(cls) for cls in CLASSES)]) + "\n"


def main(argv: list[str] | None = None) -> None:
    """Write docs/configuration.md (or the path given as the one argument)."""
    args = sys.argv[1:] if argv is None else argv
    out = Path(args[0]) if args else OUT
    out.write_text(render(), encoding="utf-8")
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
