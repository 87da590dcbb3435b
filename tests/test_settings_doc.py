"""docs/configuration.md is what `python -m clawdesk.settings_doc` writes, byte for byte."""

from __future__ import annotations

from pathlib import Path

import pytest
from pydantic_settings import BaseSettings

from clawdesk.settings_doc import CLASSES, OUT, REGENERATE, env_name, render


def test_the_committed_reference_matches_the_settings() -> None:
    assert OUT.read_text(encoding="utf-8") == render(), (
        f"docs/configuration.md is out of date: run `{REGENERATE}` and commit it"
    )


@pytest.mark.parametrize("cls", CLASSES, ids=lambda c: c.__name__)
def test_every_setting_has_a_description(cls: type[BaseSettings]) -> None:
    missing = [name for name, info in cls.model_fields.items() if not info.description]
    assert not missing, f"add Field(description=...) in clawdesk/settings.py: {missing}"


def test_every_variable_is_in_the_reference() -> None:
    text = OUT.read_text(encoding="utf-8")
    for cls in CLASSES:
        for name, info in cls.model_fields.items():
            assert f"`{env_name(cls, name, info)}`" in text


def test_env_names_follow_the_prefix() -> None:
    from clawdesk.settings import AppSettings, ConnectionSettings

    fields = AppSettings.model_fields
    assert env_name(AppSettings, "log_level", fields["log_level"]) == "CLAWDESK_LOG_LEVEL"
    conn = ConnectionSettings.model_fields
    url = env_name(ConnectionSettings, "database_url", conn["database_url"])
    assert url == "DATABASE_URL"


def test_main_writes_the_file(tmp_path: Path) -> None:
    from clawdesk.settings_doc import main

    main([str(tmp_path / "c.md")])
    assert (tmp_path / "c.md").read_text(encoding="utf-8") == render()
