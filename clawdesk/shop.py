"""The demo shop's orders (Shopify Admin API order shape), read from a packaged file."""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any


def order_number(reference: str) -> str | None:
    """The digits of an order reference such as `#1001`, `ORD-1001` or `1001`."""
    match = re.search(r"(\d{3,})", reference)
    return match.group(1) if match else None


@dataclass(frozen=True)
class DemoShop:
    """Orders by number. The skills issue replaces this with a Shopify HTTP client."""

    orders: dict[str, dict[str, Any]]

    @classmethod
    def from_file(cls, path: Path) -> DemoShop:
        """Load `{"orders": [...]}`."""
        data = json.loads(path.read_text())
        return cls({str(o["name"]).lstrip("#"): o for o in data["orders"]})

    def find(self, reference: str) -> dict[str, Any] | None:
        """The order a reference points to, or None."""
        number = order_number(reference)
        return self.orders.get(number) if number else None
