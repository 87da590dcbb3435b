"""Channel connectors. Each channel is one module with `to_event(raw)` and `send(reply)`;
channel payload types never leave this package."""

from __future__ import annotations

from connectors.registry import send_reply

__all__ = ["send_reply"]
