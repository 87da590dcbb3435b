"""JSON logging for every clawdesk process."""

from __future__ import annotations

import logging
import sys

from pythonjsonlogger.json import JsonFormatter


def json_handler() -> logging.Handler:
    """A handler writing one JSON object per record (extras included) to stderr."""
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(JsonFormatter("%(asctime)s %(levelname)s %(name)s %(message)s"))
    handler._clawdesk = True  # type: ignore[attr-defined]
    return handler


def configure_logging(level: str = "INFO") -> None:
    """Send JSON lines to stderr at `level` (idempotent)."""
    root = logging.getLogger()
    if any(getattr(h, "_clawdesk", False) for h in root.handlers):
        return
    root.addHandler(json_handler())
    root.setLevel(level)
