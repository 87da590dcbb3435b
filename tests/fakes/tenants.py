"""A second tenant's profile, configured through CLAWDESK_TENANTS_DIR (tests)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from clawdesk.settings import app_settings
from clawdesk.tenants import load_profile

ACME = """\
display_name: Acme Outfitters
title: {en: Acme Help, zh: Acme 帮助}
welcome:
  en: Welcome to Acme Outfitters! Ask about your gear.
"""


@pytest.fixture()
def acme_tenant(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    """A tenants directory with a profile for `acme`, configured by environment."""
    (tmp_path / "acme.yaml").write_text(ACME, encoding="utf-8")
    monkeypatch.setenv("CLAWDESK_TENANTS_DIR", str(tmp_path))
    app_settings.cache_clear()
    load_profile.cache_clear()
    yield tmp_path
    app_settings.cache_clear()
    load_profile.cache_clear()
