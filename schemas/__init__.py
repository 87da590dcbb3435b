"""Versioned pydantic v2 event models: the only shapes that travel on topics."""

from schemas.base import Channel, Event, Record, new_id, utc_now
from schemas.events import (
    ALL_EVENTS,
    AcceptedMessage,
    ConversationSnapshot,
    DeadLetter,
    DeliveryReceipt,
    DeliveryStatus,
    Entity,
    Handoff,
    InboundMessage,
    KbHit,
    NluResult,
    Reply,
    RetrievalContext,
    SkillResult,
    SkillStatus,
    Turn,
)
from schemas.export import export_json_schemas

__all__ = [
    "ALL_EVENTS",
    "AcceptedMessage",
    "Channel",
    "ConversationSnapshot",
    "DeadLetter",
    "DeliveryReceipt",
    "DeliveryStatus",
    "Entity",
    "Event",
    "Handoff",
    "InboundMessage",
    "KbHit",
    "NluResult",
    "Record",
    "Reply",
    "RetrievalContext",
    "SkillResult",
    "SkillStatus",
    "Turn",
    "export_json_schemas",
    "new_id",
    "utc_now",
]
