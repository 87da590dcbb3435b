"""Where a replay's messages come from: the customer messages Postgres stored, a topic
of the broker (a time range or offset ranges of its partitions), or a file of inbound
events (JSON lines, e.g. what `clawdesk topics head cs.inbound` printed).

The embedded broker keeps topics in memory only, so Postgres is the durable record of
traffic. Each stored customer message becomes the inbound event it was (same event id,
conversation, channel, text and time), so a shadow run's decisions line up with
production's message by message.
"""

from __future__ import annotations

import asyncio
import json
import re
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import psycopg
from aiokafka import AIOKafkaConsumer, ConsumerRecord, TopicPartition
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


# Every event: what a file or topic source takes unless narrowed.
EVERYTHING = Selection(datetime(1970, 1, 1, tzinfo=UTC), datetime(9999, 1, 1, tzinfo=UTC))


class BadSource(ValueError):
    """The source file holds something that is not an inbound event."""


@dataclass(frozen=True)
class FileSource:
    """Inbound events in a JSON-lines file: one `InboundMessage` a line, or topic records
    as `clawdesk topics head|tail` print them (the event under "value"), narrowed to a
    time range and optionally one tenant/channel."""

    path: Path
    selection: Selection = field(default_factory=lambda: EVERYTHING)

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


# Reads without a consumer group (no JoinGroup to wait for, on Tansu or Kafka).
_READ_OPTIONS: dict[str, Any] = {
    "group_id": None,
    "enable_auto_commit": False,
    "fetch_max_wait_ms": 100,
    "metadata_max_age_ms": 5000,
}
_IDLE_MS = 2000  # a partition read ends after this long without a record


@dataclass(frozen=True)
class TopicSource:
    """Inbound events still held by a topic of the broker: every partition between two
    times (the records' timestamps), or the offset ranges given per partition
    (`{0: (100, 200)}`: offsets 100 to 199 of partition 0). The selection narrows them
    further by the events' own time, tenant and channel."""

    bootstrap: str
    topic: str
    selection: Selection = EVERYTHING
    offsets: dict[int, tuple[int, int]] = field(default_factory=dict)

    def dump(self) -> dict[str, Any]:
        """As JSON for the run's row."""
        return {
            **self.selection.dump(),
            "from": "topic",
            "bootstrap": self.bootstrap,
            "topic": self.topic,
            "offsets": {str(p): list(r) for p, r in self.offsets.items()},
        }

    @classmethod
    def load(cls, data: dict[str, Any]) -> TopicSource:
        """From the run's row."""
        offsets = {int(p): (int(r[0]), int(r[1])) for p, r in data.get("offsets", {}).items()}
        return cls(data["bootstrap"], data["topic"], Selection.load(data), offsets)


_OFFSETS_RE = re.compile(r"^(\d+)[:=](\d+)-(\d+)$")


def parse_offsets(text: str) -> dict[int, tuple[int, int]]:
    """`0:100-200,1:0-50` → {0: (100, 200), 1: (0, 50)}; end offsets are exclusive."""
    out: dict[int, tuple[int, int]] = {}
    for part in filter(None, (p.strip() for p in text.split(","))):
        match = _OFFSETS_RE.match(part)
        if not match or int(match[2]) > int(match[3]):
            raise BadSource(f"--offsets: {part!r} is not PARTITION:START-END (START <= END)")
        out[int(match[1])] = (int(match[2]), int(match[3]))
    return out


def topic_messages(source: TopicSource) -> list[InboundMessage]:
    """The topic's events the source takes, oldest first."""
    records = asyncio.run(_read_topic(source))
    out = []
    for record in records:
        try:
            msg = InboundMessage.model_validate_json(record.value or b"")
        except ValidationError as err:
            where = f"{record.topic}[{record.partition}]@{record.offset}"
            raise BadSource(f"{where}: not an inbound event: {err}") from err
        if _selected(msg, source.selection):
            out.append(msg)
    return sorted(out, key=lambda m: m.received_at)


async def _read_topic(source: TopicSource) -> list[ConsumerRecord[bytes, bytes]]:
    consumer = AIOKafkaConsumer(bootstrap_servers=source.bootstrap, **_READ_OPTIONS)
    try:
        await consumer.start()
    except Exception as err:  # the broker is down or the address is wrong
        raise BadSource(f"cannot reach the broker at {source.bootstrap}: {err}") from err
    try:
        bounds = await _bounds(consumer, source)
        consumer.assign(list(bounds))
        for tp, (start, _) in bounds.items():
            consumer.seek(tp, start)
        batch: list[ConsumerRecord[bytes, bytes]] = []
        while any([await consumer.position(tp) < end for tp, (_, end) in bounds.items()]):
            got = await consumer.getmany(timeout_ms=_IDLE_MS)
            if not got:
                break
            for tp, records in got.items():
                batch.extend(r for r in records if r.offset < bounds[tp][1])
        return batch
    finally:
        await consumer.stop()


async def _bounds(
    consumer: AIOKafkaConsumer, source: TopicSource
) -> dict[TopicPartition, tuple[int, int]]:
    """Each partition's first offset to read and the one to stop before."""
    parts = consumer.partitions_for_topic(source.topic)
    if not parts:
        await consumer._client.force_metadata_update()  # a topic created just now
        parts = consumer.partitions_for_topic(source.topic)
    if not parts:
        raise BadSource(f"no such topic: {source.topic}")
    tps = [TopicPartition(source.topic, p) for p in sorted(parts)]
    first, end = await consumer.beginning_offsets(tps), await consumer.end_offsets(tps)
    if source.offsets:
        unknown = sorted(set(source.offsets) - set(parts))
        if unknown:
            raise BadSource(f"{source.topic} has no partition {unknown[0]}")
        return {
            tp: (max(first[tp], source.offsets[tp.partition][0]), min(end[tp], r[1]))
            for tp in tps
            if (r := source.offsets.get(tp.partition))
        }
    return {tp: (first[tp], end[tp]) for tp in tps}


def messages(url: str, source: dict[str, Any]) -> list[InboundMessage]:
    """The messages of a run's source, as stored in its row (`dump()`)."""
    selection = Selection.load(source)
    if source.get("from") == "file":
        return unique(file_messages(FileSource(Path(source["path"]), selection)))
    if source.get("from") == "topic":
        return unique(topic_messages(TopicSource.load(source)))
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
