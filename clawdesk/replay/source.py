"""Where a replay's messages come from: the customer messages Postgres stored, or a
file of inbound events (JSON lines, e.g. what `clawdesk topics head cs.inbound` printed).

The embedded broker keeps topics in memory only, so Postgres is the durable record of
traffic. Each stored customer message becomes the inbound event it was (same event id,
conversation, channel, text and time), so a shadow run's decisions line up with
production's message by message.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import psycopg
from psycopg import sql
from psycopg.rows import dict_row
from pydantic import ValidationError

from schemas import Channel, InboundMessage


@dataclass(frozen=True)
class Selection:
    """Which stored messages to replay: a time range, optionally one tenant/channel."""

    since: datetime
    until: datetime
    tenant: str | None = None
    channel: str | None = None

    def dump(self) -> dict[str, Any]:
        """As JSON for the run's row."""
        out = asdict(self)
        out["since"], out["until"] = self.since.isoformat(), self.until.isoformat()
        return {"from": "postgres", **out}

    @classmethod
    def load(cls, data: dict[str, Any]) -> Selection:
        """From the run's row."""
        return cls(
            since=datetime.fromisoformat(data["since"]),
            until=datetime.fromisoformat(data["until"]),
            tenant=data.get("tenant"),
            channel=data.get("channel"),
        )


class BadSource(ValueError):
    """The source file holds something that is not an inbound event."""


@dataclass(frozen=True)
class FileSource:
    """Inbound events in a JSON-lines file: one `InboundMessage` a line, or topic records
    as `clawdesk topics head|tail` print them (the event under "value"), narrowed to a
    time range and optionally one tenant/channel."""

    path: Path
    selection: Selection = field(
        default_factory=lambda: Selection(
            datetime(1970, 1, 1, tzinfo=UTC), datetime(9999, 1, 1, tzinfo=UTC)
        )
    )

    def dump(self) -> dict[str, Any]:
        """As JSON for the run's row."""
        return {**self.selection.dump(), "from": "file", "path": str(self.path.resolve())}


def file_messages(source: FileSource) -> list[InboundMessage]:
    """The file's events that the selection takes, oldest first (a stable sort: equal
    times keep the file's order)."""
    out = []
    for number, line in enumerate(source.path.read_text().splitlines(), 1):
        if not line.strip():
            continue
        try:
            data = json.loads(line)
            if isinstance(data, dict) and "topic" in data and "value" in data:
                data = data["value"]
            msg = InboundMessage.model_validate(data)
        except (ValueError, ValidationError) as err:
            raise BadSource(f"{source.path}:{number}: not an inbound event: {err}") from err
        if _selected(msg, source.selection):
            out.append(msg)
    return sorted(out, key=lambda m: m.received_at)


def _selected(msg: InboundMessage, selection: Selection) -> bool:
    at = msg.received_at if msg.received_at.tzinfo else msg.received_at.replace(tzinfo=UTC)
    return (
        selection.since <= at < selection.until
        and selection.tenant in (None, msg.tenant_id)
        and selection.channel in (None, msg.channel.value)
    )


def messages(url: str, source: dict[str, Any]) -> list[InboundMessage]:
    """The messages of a run's source, as stored in its row (`dump()`)."""
    selection = Selection.load(source)
    if source.get("from") == "file":
        return unique(file_messages(FileSource(Path(source["path"]), selection)))
    return stored_messages(url, selection)


def unique(events: list[InboundMessage]) -> list[InboundMessage]:
    """The first of each channel message (a saved topic holds redeliveries): ingest
    would drop a repeat as a duplicate, and it would never get a decision."""
    seen: set[tuple[str, str, str]] = set()
    out = []
    for msg in events:
        key = (msg.tenant_id, msg.channel.value, msg.channel_message_id)
        if key not in seen:
            seen.add(key)
            out.append(msg)
    return out


def stored_messages(url: str, selection: Selection) -> list[InboundMessage]:
    """The selected customer messages as inbound events, oldest first (ties by id, so
    every call returns the same order)."""
    where = [
        sql.SQL("m.direction = 'in'"),
        sql.SQL("m.author = 'customer'"),
        sql.SQL('m."timestamp" >= %(since)s'),
        sql.SQL('m."timestamp" < %(until)s'),
    ]
    if selection.tenant:
        where.append(sql.SQL("m.tenant_id = %(tenant)s"))
    if selection.channel:
        where.append(sql.SQL("m.channel = %(channel)s"))
    query = sql.SQL(
        "SELECT m.id, m.conversation_id, m.tenant_id, m.user_id, m.channel,"
        ' m.channel_message_id, m.text, m."timestamp", c.reply_metadata'
        " FROM messages m JOIN conversations c ON c.id = m.conversation_id"
        ' WHERE {} ORDER BY m."timestamp", m.id'
    ).format(sql.SQL(" AND ").join(where))
    with psycopg.connect(url, row_factory=dict_row) as conn:
        rows = conn.execute(query, asdict(selection)).fetchall()
    return [_event(r) for r in rows]


def _event(row: dict[str, Any]) -> InboundMessage:
    metadata = {str(k): str(v) for k, v in (row["reply_metadata"] or {}).items()}
    return InboundMessage(
        event_id=row["id"],
        conversation_id=row["conversation_id"],
        tenant_id=row["tenant_id"],
        channel=Channel(row["channel"]),
        occurred_at=row["timestamp"],
        channel_message_id=row["channel_message_id"] or row["id"],
        customer_id=row["user_id"],
        text=row["text"],
        received_at=row["timestamp"],
        metadata=metadata,
    )
