"""The base every clawdesk event shares: identity, tenancy, channel, time, version."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from enum import StrEnum
from typing import Any, ClassVar, Self

from pydantic import BaseModel, ConfigDict, Field


def new_id() -> str:
    """A fresh event id (UUID4, hex string)."""
    return uuid.uuid4().hex


def utc_now() -> datetime:
    """The current time, timezone-aware in UTC."""
    return datetime.now(UTC)


class Channel(StrEnum):
    """Where a customer writes from; the dispatcher sends replies back the same way."""

    WEB = "web"
    WHATSAPP = "whatsapp"
    TELEGRAM = "telegram"
    WECHAT = "wechat"
    INAPP = "inapp"
    EMAIL = "email"


class Record(BaseModel):
    """A frozen value type that refuses unknown fields."""

    model_config = ConfigDict(frozen=True, extra="forbid")


class Event(Record):
    """Fields on every event. `schema_version` is bumped on any incompatible change."""

    SCHEMA_VERSION: ClassVar[int] = 1

    event_id: str = Field(default_factory=new_id, min_length=1, max_length=64)
    conversation_id: str = Field(min_length=1, max_length=200)
    tenant_id: str = Field(min_length=1, max_length=64, pattern=r"^[A-Za-z0-9_.-]+$")
    channel: Channel
    occurred_at: datetime = Field(default_factory=utc_now)
    schema_version: int = 1

    def to_bytes(self) -> bytes:
        """Serialise to JSON bytes for the wire."""
        return self.model_dump_json().encode()

    @classmethod
    def from_bytes(cls, data: bytes | str) -> Self:
        """Parse and validate JSON bytes from the wire (raises `ValidationError`)."""
        return cls.model_validate_json(data)

    def lineage(self, **changes: Any) -> dict[str, Any]:
        """The identity fields a derived event inherits, with a fresh event id."""
        base = {
            "conversation_id": self.conversation_id,
            "tenant_id": self.tenant_id,
            "channel": self.channel,
        }
        base.update(changes)
        return base
