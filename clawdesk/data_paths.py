"""Where the data files shipped inside the package live.

A module of its own so that any layer (the services, the skill runtime, the CLI) can
find the packaged data without importing `clawdesk.services` — which imports the skill
runtime, and so must not be imported back by it."""

from __future__ import annotations

from pathlib import Path

DATA_DIR = Path(__file__).parent / "data"


def packaged_data(*parts: str) -> Path:
    """A path inside the package's data folder."""
    return DATA_DIR.joinpath(*parts)
