"""Conversation memory as plain dicts: pure functions, no table.

The memory table itself is the ingest stage's (`agents.ingest.conversation_memory`),
the dialogue state table the skills stage's (`agents.skills.conversation_dialogue`).
Every other stage changes them by events on topics keyed by conversation id, which the
owning stage consumes on the partitions it owns.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from clawdesk.storage import db
from schemas import ConversationSnapshot, Entity, Turn

SEEN_LIMIT = 200  # event ids remembered per conversation to spot redeliveries
SLOT_KINDS = {
    "order_number": "order_number",
    "tracking_number": "tracking_number",
    "email": "email",
}


def snapshot(raw: dict[str, Any] | None) -> ConversationSnapshot:
    """The stored memory as a snapshot (empty for a new conversation)."""
    if not raw:
        return ConversationSnapshot()
    return ConversationSnapshot.model_validate(
        {k: raw[k] for k in ("turns", "slots", "language", "handoff") if k in raw}
    )


def seen(memory: dict[str, Any] | None, event_id: str) -> bool:
    """Whether an event was applied to the memory already (a redelivery)."""
    return event_id in (memory or {}).get("seen", [])


def mark_seen(memory: dict[str, Any], event_id: str) -> dict[str, Any]:
    """Memory that remembers the event id, so a redelivery changes nothing."""
    if seen(memory, event_id):
        return memory
    return {**memory, "seen": [*memory.get("seen", []), event_id][-SEEN_LIMIT:]}


def remember_turn(
    raw: dict[str, Any] | None,
    role: str,
    text: str,
    at: datetime,
    event_id: str,
    max_turns: int,
    *,
    in_time_order: bool = False,
) -> dict[str, Any]:
    """Memory with one more turn (idempotent per event id) trimmed to `max_turns`.

    The turn is appended, or with `in_time_order` placed after the last turn that is
    not later than it: for turns that come by another topic than the customer's (an
    agent's reply), which may be applied after a customer message that followed it.
    """
    memory = dict(raw or {"turns": [], "slots": {}, "language": None, "handoff": False})
    seen = list(memory.get("seen", []))
    if event_id in seen:
        return memory
    turn = Turn(role=role, text=text, at=at)  # type: ignore[arg-type]
    turns = list(memory.get("turns", []))
    place = len(turns)
    if in_time_order:
        while place > 0 and _utc(Turn.model_validate(turns[place - 1]).at) > _utc(at):
            place -= 1
    turns.insert(place, turn.model_dump(mode="json"))
    memory["turns"] = turns[-max_turns:]
    memory["seen"] = [*seen, event_id][-SEEN_LIMIT:]
    return memory


def _utc(at: datetime) -> datetime:
    # A naive time (an old or hand-made event) is read as UTC, so times compare at all.
    return at if at.tzinfo is not None else at.replace(tzinfo=UTC)


def slots_of(entities: list[Entity]) -> dict[str, str]:
    """The slots a message's entities fill (the last of a kind wins)."""
    return {SLOT_KINDS[e.kind]: e.value for e in entities if e.kind in SLOT_KINDS}


def with_slots(raw: dict[str, Any] | None, slots: dict[str, str]) -> dict[str, Any]:
    """Memory with `slots` filled in over the remembered ones."""
    memory = dict(raw or {"turns": [], "slots": {}, "language": None, "handoff": False})
    memory["slots"] = {**memory.get("slots", {}), **slots}
    return memory


def remember_slots(
    raw: dict[str, Any] | None, entities: list[Entity], language: str | None
) -> dict[str, Any]:
    """Memory with slots filled from entities (latest wins) and the language."""
    memory = with_slots(raw, slots_of(entities))
    if language:
        memory["language"] = language
    return memory


def with_handoff(raw: dict[str, Any] | None, handoff: bool) -> dict[str, Any]:
    """Memory with the handoff flag set or cleared."""
    memory = dict(raw or {"turns": [], "slots": {}, "language": None, "handoff": False})
    memory["handoff"] = handoff
    return memory


def dialogue(raw: dict[str, Any] | None) -> dict[str, Any]:
    """The skills stage's dialogue state kept in memory (pending confirmation, counters)."""
    return dict((raw or {}).get("dialogue") or {})


def with_dialogue(raw: dict[str, Any] | None, state: dict[str, Any]) -> dict[str, Any]:
    """Memory with the skills stage's dialogue state replaced."""
    memory = dict(raw or {"turns": [], "slots": {}, "language": None, "handoff": False})
    memory["dialogue"] = state
    return memory


def restored(stored: db.StoredConversation, max_turns: int) -> dict[str, Any]:
    """Memory rebuilt from what Postgres keeps (after the table's changelog was lost,
    e.g. with a memory-only broker): the turns, the language and the handoff flag. The
    slots and any pending confirmation are not in Postgres and start empty."""
    memory: dict[str, Any] | None = None
    for message in stored.messages:
        memory = remember_turn(
            memory, message.author, message.text, message.timestamp, message.id, max_turns
        )
    memory = dict(memory or {"turns": [], "slots": {}, "language": None, "handoff": False})
    memory["language"] = stored.language
    memory["handoff"] = stored.status == "human"
    return memory
