"""A replay's sources: a file of inbound events (plain or as `clawdesk topics` prints
records), and a topic of the real embedded broker read by time or offsets."""

from __future__ import annotations

import asyncio
import json
import uuid
from datetime import UTC, datetime
from pathlib import Path

import pytest
from aiokafka import AIOKafkaProducer

from clawdesk.replay.source import (
    BadSource,
    FileSource,
    Selection,
    TopicSource,
    file_messages,
    parse_offsets,
    topic_messages,
    unique,
)
from clawdesk.runtime.supervisor import create_topics
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


def _produce(broker: str, topic: str, values: list[bytes]) -> None:
    async def send() -> None:
        producer = AIOKafkaProducer(bootstrap_servers=broker)
        await producer.start()
        try:
            for i, value in enumerate(values):
                await producer.send_and_wait(topic, value, key=b"k", partition=i % 2)
        finally:
            await producer.stop()

    asyncio.run(send())


@pytest.fixture()
def inbound_topic(broker: str) -> str:
    topic = f"rs{uuid.uuid4().hex[:8]}.inbound"
    create_topics(broker, {topic: 2})
    return topic


def test_a_topic_is_read_by_time_and_by_offsets(broker: str, inbound_topic: str) -> None:
    days = [event("a", 1), event("b", 2), event("c", 3), event("d", 4), event("a", 1)]
    _produce(broker, inbound_topic, [e.model_dump_json().encode() for e in days])
    every = topic_messages(TopicSource(broker, inbound_topic))
    assert [m.text for m in every] == ["a", "a", "b", "c", "d"], "oldest first"
    assert [m.text for m in unique(every)] == ["a", "b", "c", "d"], "the redelivery once"

    window = Selection(datetime(2026, 12, 2, tzinfo=UTC), datetime(2026, 12, 4, tzinfo=UTC))
    assert [m.text for m in topic_messages(TopicSource(broker, inbound_topic, window))] == [
        "b",
        "c",
    ]
    # partition 0 holds a, c, a (offsets 0-2); partition 1 holds b, d
    only = TopicSource(broker, inbound_topic, offsets=parse_offsets("0:1-2,1:1-5"))
    assert [m.text for m in topic_messages(only)] == ["c", "d"]
    again = TopicSource.load(json.loads(json.dumps(only.dump())))
    assert again == only, "a run's row gives back the same source on resume"


def test_a_topic_record_that_is_no_event_names_where_it_is(broker: str, inbound_topic: str) -> None:
    _produce(broker, inbound_topic, [event("a", 1).model_dump_json().encode(), b"{}"])
    with pytest.raises(BadSource, match=rf"{inbound_topic}\[1\]@0: not an inbound event"):
        topic_messages(TopicSource(broker, inbound_topic))
    with pytest.raises(BadSource, match="no such topic"):
        topic_messages(TopicSource(broker, f"{inbound_topic}-missing"))
    with pytest.raises(BadSource, match="has no partition 7"):
        topic_messages(TopicSource(broker, inbound_topic, offsets={7: (0, 1)}))


@pytest.mark.parametrize("text", ["0:5", "x:1-2", "0:3-1"])
def test_bad_offsets_are_refused(text: str) -> None:
    with pytest.raises(BadSource, match="PARTITION:START-END"):
        parse_offsets(text)
