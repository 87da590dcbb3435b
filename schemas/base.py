"""The base every clawdesk event shares: identity, tenancy, channel, time, version."""

from __future__ import annotations

import re
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


_CHANNEL_NAME = re.compile(r"^[a-z][a-z0-9_]{1,31}$")
_REGISTERED: set[str] = set()


def register_channel_name(name: str) -> None:
    """Make `name` a valid Channel (a channel a plugin adds: `connectors.registry`)."""
    if not _CHANNEL_NAME.match(name):
        raise ValueError(f"a channel name is lower-case letters, digits and _: {name!r}")
    _REGISTERED.add(name)


class Channel(StrEnum):
    """Where a customer writes from; the dispatcher sends replies back the same way.

    The members are the built-in channels; a registered channel's name is a Channel
    too (made on first use), so events of a plugin channel validate and travel."""

    WEB = "web"
    WHATSAPP = "whatsapp"
    TELEGRAM = "telegram"
    WECHAT = "wechat"
    INAPP = "inapp"
    EMAIL = "email"

    @classmethod
    def _missing_(cls, value: object) -> Channel | None:
        if not isinstance(value, str) or value not in _REGISTERED:
            return None
        member = str.__new__(cls, value)
        member._name_ = value.upper()
        member._value_ = value
        return cls._value2member_map_.setdefault(value, member)  # type: ignore[return-value]


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
