"""A replay's source file: inbound events, plain or as `clawdesk topics` prints records."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path

import pytest

from clawdesk.replay.source import BadSource, FileSource, Selection, file_messages, unique
from schemas import Channel, InboundMessage


def event(text: str, day: int, channel: Channel = Channel.WEB) -> InboundMessage:
    return InboundMessage(
        conversation_id=f"c-{text}",
        tenant_id="demo",
        channel=channel,
        channel_message_id=text,
        customer_id="c1",
        text=text,
        received_at=datetime(2026, 12, day, tzinfo=UTC),
    )


def test_events_and_topic_records_are_read_oldest_first(tmp_path: Path) -> None:
    path = tmp_path / "day.jsonl"
    late, early = event("late", 3), event("early", 1)
    record = {"topic": "cs.inbound", "partition": 0, "offset": 7, "key": "c-early",
              "value": json.loads(early.to_bytes())}  # fmt: skip
    path.write_text(f"{late.model_dump_json()}\n\n{json.dumps(record)}\n")
    assert [m.text for m in file_messages(FileSource(path))] == ["early", "late"]
    assert file_messages(FileSource(path))[0] == early, "the same event, id and time"


def test_the_selection_narrows_a_file(tmp_path: Path) -> None:
    path = tmp_path / "day.jsonl"
    lines = [event("a", 1), event("b", 2, Channel.TELEGRAM), event("c", 3)]
    path.write_text("\n".join(m.model_dump_json() for m in lines))
    window = Selection(datetime(2026, 12, 2, tzinfo=UTC), datetime(2026, 12, 4, tzinfo=UTC))
    assert [m.text for m in file_messages(FileSource(path, window))] == ["b", "c"]
    telegram = Selection(window.since, window.until, channel="telegram")
    assert [m.text for m in file_messages(FileSource(path, telegram))] == ["b"]


def test_a_line_that_is_not_an_event_names_its_line(tmp_path: Path) -> None:
    path = tmp_path / "bad.jsonl"
    path.write_text(event("ok", 1).model_dump_json() + '\n{"text": "no ids"}\n')
    with pytest.raises(BadSource, match=r"bad.jsonl:2: not an inbound event"):
        file_messages(FileSource(path))


def test_a_redelivered_message_is_replayed_once() -> None:
    first, other = event("a", 1), event("b", 2)
    again = first.model_copy(update={"event_id": "other-event"})
    assert unique([first, again, other]) == [first, other]
