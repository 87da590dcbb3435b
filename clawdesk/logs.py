"""JSON logging for every clawdesk process."""

from __future__ import annotations

import logging
import sys

from pythonjsonlogger.json import JsonFormatter


def configure_logging(level: str = "INFO") -> None:
    """Send JSON lines to stderr at `level` (idempotent)."""
    root = logging.getLogger()
    if any(getattr(h, "_clawdesk", False) for h in root.handlers):
        return
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(JsonFormatter("%(asctime)s %(levelname)s %(name)s %(message)s"))
    handler._clawdesk = True  # type: ignore[attr-defined]
    root.addHandler(handler)
    root.setLevel(level)
