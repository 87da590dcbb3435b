"""Channel connectors. Each channel is one module that owns both directions behind the
`connectors.base.Channel` contract (settings, verify, parse, webhook routes, send, files,
polling); `connectors.registry` lists them. Channel payload types never leave this
package."""

from __future__ import annotations

from connectors.registry import send_reply

__all__ = ["send_reply"]
