"""`clawdesk topics list|head|tail|produce|offsets|lag`: look at the pipeline's topics.

Debian's kcat (librdkafka 2.0.2) cannot talk to the embedded Tansu broker, and consumer
groups with default timeouts wait minutes to join it; these commands use aiokafka with
settings that work on Tansu and on Apache Kafka alike (docs/topics.md): reads assign
partitions directly (no group to join), and everything prints JSON on stdout.
"""

from __future__ import annotations

import asyncio
import json
import sys
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Annotated, Any

import typer
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, ConsumerRecord, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient
from pydantic import ValidationError
from rich.console import Console

from clawdesk.settings import app_settings, connection_settings
from topics import ALL_TOPICS, TopicSpec

app = typer.Typer(help="Look at topics: list, head, tail, produce, offsets, consumer lag.")
console = Console(stderr=True)
# Reads without a consumer group: no JoinGroup to wait for, on Tansu or Kafka.
READ_OPTIONS: dict[str, Any] = {
    "group_id": None,
    "enable_auto_commit": False,
    "fetch_max_wait_ms": 100,
    "metadata_max_age_ms": 5000,
}
IDLE_MS = 1000  # a read ends after this long without a record (but with --follow)


def _bootstrap() -> str:
    servers = connection_settings().kafka_bootstrap_servers
    if not servers:
        console.print("[red]KAFKA_BOOTSTRAP_SERVERS is not set[/] (`clawdesk up` prints it)")
        raise typer.Exit(2)
    return servers


def spec_of(topic: str) -> TopicSpec | None:
    """The declaration a topic name is an instance of (any prefix: production's, a
    test's or a shadow run's), or None."""
    for spec in ALL_TOPICS:
        if topic == spec.suffix or topic.endswith(f".{spec.suffix}"):
            return spec
    return None


def record_json(record: ConsumerRecord[bytes, bytes]) -> dict[str, Any]:
    """A record as a JSON object: where it is, its key, time and value (parsed JSON,
    else text)."""
    raw = record.value or b""
    try:
        value: Any = json.loads(raw)
    except ValueError:
        value = raw.decode(errors="replace")
    return {
        "topic": record.topic,
        "partition": record.partition,
        "offset": record.offset,
        "timestamp": record.timestamp,
        "key": record.key.decode(errors="replace") if record.key is not None else None,
        "value": value,
    }


@asynccontextmanager
async def _consumer(bootstrap: str) -> AsyncIterator[AIOKafkaConsumer]:
    consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap, **READ_OPTIONS)
    await consumer.start()
    try:
        yield consumer
    finally:
        await consumer.stop()


async def offsets(bootstrap: str, topic: str) -> list[dict[str, int]]:
    """Each partition's first and next offset (records = their difference)."""
    async with _consumer(bootstrap) as consumer:
        parts = sorted(consumer.partitions_for_topic(topic) or ())
        if not parts:
            await consumer._client.force_metadata_update()  # a topic created just now
            parts = sorted(consumer.partitions_for_topic(topic) or ())
        tps = [TopicPartition(topic, p) for p in parts]
        first = await consumer.beginning_offsets(tps)
        end = await consumer.end_offsets(tps)
    return [
        {
            "partition": tp.partition,
            "first": first[tp],
            "end": end[tp],
            "records": end[tp] - first[tp],
        }
        for tp in tps
    ]


async def list_topics(bootstrap: str, prefix: str) -> list[dict[str, Any]]:
    """The topics (under `prefix`) with partitions and record counts."""
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
    await admin.start()
    try:
        names = sorted(t for t in await admin.list_topics() if t.startswith(prefix))
    finally:
        await admin.close()
    out = []
    for name in names:
        parts = await offsets(bootstrap, name)
        spec = spec_of(name)
        out.append(
            {
                "topic": name,
                "partitions": len(parts),
                "records": sum(p["records"] for p in parts),
                "schema": spec.value_schema.__name__ if spec else None,
                "key": spec.key if spec else None,
            }
        )
    return out


async def read(
    bootstrap: str, topic: str, n: int, *, from_end: bool, follow: bool = False
) -> AsyncIterator[dict[str, Any]]:
    """Up to `n` records per partition from the start (head) or the last `n` (tail),
    oldest first; with `follow`, then every new record until interrupted."""
    async with _consumer(bootstrap) as consumer:
        parts = sorted(consumer.partitions_for_topic(topic) or ())
        if not parts:
            raise typer.BadParameter(f"no such topic: {topic}")
        tps = [TopicPartition(topic, p) for p in parts]
        consumer.assign(tps)
        first, end = await consumer.beginning_offsets(tps), await consumer.end_offsets(tps)
        stop = {tp: end[tp] if from_end else min(first[tp] + n, end[tp]) for tp in tps}
        for tp in tps:
            consumer.seek(tp, max(first[tp], end[tp] - n) if from_end else first[tp])
        batch: list[ConsumerRecord[bytes, bytes]] = []
        while await _behind(consumer, tps, stop):
            got = await consumer.getmany(timeout_ms=IDLE_MS)
            if not got:
                break
            for tp, records in got.items():
                batch.extend(r for r in records if r.offset < stop[tp])
        for record in sorted(batch, key=lambda r: (r.timestamp, r.partition, r.offset)):
            yield record_json(record)
        if follow:
            for tp in tps:
                consumer.seek(tp, stop[tp])
            async for record in consumer:
                yield record_json(record)


async def _behind(
    consumer: AIOKafkaConsumer, tps: list[TopicPartition], stop: dict[TopicPartition, int]
) -> bool:
    for tp in tps:
        if await consumer.position(tp) < stop[tp]:
            return True
    return False


def validated(topic: str, lines: list[str]) -> list[tuple[bytes, bytes]]:
    """(key, value) of each JSON line, checked against the topic's event schema; raises
    BadParameter naming the first bad line (nothing is produced then)."""
    spec = spec_of(topic)
    out = []
    for number, line in enumerate(lines, 1):
        if not line.strip():
            continue
        if spec is None:
            raise typer.BadParameter(f"{topic} is not a pipeline topic: no schema to check")
        try:
            event = spec.value_schema.model_validate_json(line)
        except ValidationError as err:
            raise typer.BadParameter(
                f"line {number} is not a valid {spec.value_schema.__name__}: {err}"
            ) from err
        key = str(getattr(event, spec.key))
        out.append((key.encode(), event.model_dump_json().encode()))
    return out


async def produce(
    bootstrap: str, topic: str, records: list[tuple[bytes, bytes]]
) -> list[dict[str, Any]]:
    """Produce the records (acks=all); where each landed."""
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, acks="all")
    await producer.start()
    try:
        sent = [await producer.send_and_wait(topic, value=v, key=k) for k, v in records]
    finally:
        await producer.stop()
    return [
        {"topic": m.topic, "partition": m.partition, "offset": m.offset, "key": k.decode()}
        for m, (k, _) in zip(sent, records, strict=True)
    ]


async def lag(bootstrap: str, group: str, prefix: str) -> list[dict[str, Any]]:
    """The group's committed offset, the end offset and the lag of each partition of
    the topics under `prefix` that the group has committed on.

    The committed offsets are fetched per partition (OffsetFetch with a partition
    list): Tansu answers the admin client's "every partition of the group" form with a
    response aiokafka cannot decode.
    """
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
    await admin.start()
    try:
        names = sorted(t for t in await admin.list_topics() if t.startswith(prefix))
    finally:
        await admin.close()
    consumer = AIOKafkaConsumer(
        bootstrap_servers=bootstrap, group_id=group, enable_auto_commit=False
    )
    await consumer.start()
    try:
        tps = [
            TopicPartition(name, p)
            for name in names
            for p in sorted(consumer.partitions_for_topic(name) or ())
        ]
        end = await consumer.end_offsets(tps) if tps else {}
        rows = []
        for tp in tps:
            done = await consumer.committed(tp)
            if done is None:
                continue
            lag = max(end[tp] - done, 0)
            rows.append(
                {
                    "topic": tp.topic,
                    "partition": tp.partition,
                    "committed": done,
                    "end": end[tp],
                    "lag": lag,
                }
            )
    finally:
        await consumer.stop()
    return rows


def _print(value: Any) -> None:
    typer.echo(json.dumps(value, ensure_ascii=False, indent=2))


@app.command("list")
def list_command(
    prefix: Annotated[str | None, typer.Option(help="default: the configured topic prefix")] = None,
    all_topics: Annotated[bool, typer.Option("--all", help="every topic on the broker")] = False,
) -> None:
    """Topics with partitions, records, key and event schema (JSON)."""
    chosen = "" if all_topics else (prefix if prefix is not None else app_settings().topic_prefix)
    _print(asyncio.run(list_topics(_bootstrap(), chosen)))


def _stream(topic: str, n: int, from_end: bool, follow: bool) -> None:
    async def run() -> None:
        async for item in read(_bootstrap(), topic, n, from_end=from_end, follow=follow):
            typer.echo(json.dumps(item, ensure_ascii=False))

    try:
        asyncio.run(run())
    except KeyboardInterrupt:
        pass


@app.command("head")
def head(
    topic: Annotated[str, typer.Argument(help="full topic name, e.g. cs.inbound")],
    n: Annotated[int, typer.Option("-n", help="records per partition")] = 10,
) -> None:
    """The first records of each partition, oldest first (JSON lines)."""
    _stream(topic, n, from_end=False, follow=False)


@app.command("tail")
def tail(
    topic: Annotated[str, typer.Argument(help="full topic name, e.g. cs.replies")],
    n: Annotated[int, typer.Option("-n", help="records per partition")] = 10,
    follow: Annotated[bool, typer.Option("--follow", "-f", help="then wait for more")] = False,
) -> None:
    """The last records of each partition, oldest first (JSON lines)."""
    _stream(topic, n, from_end=True, follow=follow)


@app.command("produce")
def produce_command(
    topic: Annotated[str, typer.Argument(help="full topic name")],
    file: Annotated[Path | None, typer.Option(help="JSON lines; default stdin")] = None,
) -> None:
    """Produce JSON-lines events, each validated against the topic's schema first and
    keyed as the pipeline keys it (by conversation id); prints where each landed."""
    lines = (file.read_text() if file else sys.stdin.read()).splitlines()
    records = validated(topic, lines)
    _print(asyncio.run(produce(_bootstrap(), topic, records)))


@app.command("offsets")
def offsets_command(topic: Annotated[str, typer.Argument(help="full topic name")]) -> None:
    """Each partition's first and end offset (JSON)."""
    _print(asyncio.run(offsets(_bootstrap(), topic)))


@app.command("lag")
def lag_command(
    group: Annotated[str | None, typer.Argument(help="consumer group; default the app id")] = None,
    prefix: Annotated[str | None, typer.Option(help="default: the configured topic prefix")] = None,
) -> None:
    """How far the consumer group's commits trail each partition's end (JSON)."""
    settings = app_settings()
    chosen = prefix if prefix is not None else settings.topic_prefix
    _print(asyncio.run(lag(_bootstrap(), group or settings.app_id, chosen)))
