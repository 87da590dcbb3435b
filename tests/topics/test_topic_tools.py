"""`clawdesk topics`: list, head, tail, offsets, lag and schema-checked produce against
the real embedded broker."""

from __future__ import annotations

import json
import uuid

import pytest
import typer
from aiokafka import AIOKafkaConsumer, TopicPartition
from typer.testing import CliRunner

from clawdesk.cli import topics as tools
from clawdesk.runtime.supervisor import create_topics
from clawdesk.settings import AppSettings
from schemas import Channel, InboundMessage
from topics import inbound_spec


@pytest.fixture()
def prefix(broker: str) -> str:
    name = f"tt{uuid.uuid4().hex[:8]}"
    settings = AppSettings(_env_file=None, topic_prefix=name)  # type: ignore[call-arg]
    create_topics(broker, {inbound_spec.name(settings): 2})
    return name


def message(conversation: str, text: str) -> str:
    return InboundMessage(
        conversation_id=conversation,
        tenant_id="demo",
        channel=Channel.WEB,
        channel_message_id=uuid.uuid4().hex,
        customer_id="c1",
        text=text,
    ).model_dump_json()


async def test_produce_checks_the_schema_and_keys_by_conversation(broker: str, prefix: str) -> None:
    topic = f"{prefix}.inbound"
    bad = [message("conv-a", "hi"), '{"conversation_id": "conv-b", "text": "no tenant"}']
    with pytest.raises(typer.BadParameter, match="line 2 is not a valid InboundMessage"):
        tools.validated(topic, bad)
    assert sum(p["records"] for p in await tools.offsets(broker, topic)) == 0, "nothing sent"

    lines = [message("conv-a", "first"), message("conv-b", "other"), message("conv-a", "second")]
    landed = await tools.produce(broker, topic, tools.validated(topic, lines))
    assert [x["key"] for x in landed] == ["conv-a", "conv-b", "conv-a"]
    assert landed[0]["partition"] == landed[2]["partition"], "one conversation, one partition"

    head = [r async for r in tools.read(broker, topic, 10, from_end=False)]
    assert [r["value"]["text"] for r in head if r["key"] == "conv-a"] == ["first", "second"]
    tail = [r async for r in tools.read(broker, topic, 1, from_end=True)]
    assert {r["value"]["text"] for r in tail} <= {"second", "other"} and len(tail) <= 2
    assert sum(p["records"] for p in await tools.offsets(broker, topic)) == 3

    [listed] = await tools.list_topics(broker, prefix)
    assert listed == {
        "topic": topic,
        "partitions": 2,
        "records": 3,
        "schema": "InboundMessage",
        "key": "conversation_id",
    }


async def test_lag_is_what_a_group_has_not_committed(broker: str, prefix: str) -> None:
    topic = f"{prefix}.inbound"
    lines = [message("conv-a", f"m{i}") for i in range(3)]
    landed = await tools.produce(broker, topic, tools.validated(topic, lines))
    tp = TopicPartition(topic, landed[0]["partition"])
    group = f"{prefix}-group"
    consumer = AIOKafkaConsumer(bootstrap_servers=broker, group_id=group, enable_auto_commit=False)
    await consumer.start()
    try:
        consumer.assign([tp])
        await consumer.commit({tp: 1})  # one of three read
    finally:
        await consumer.stop()
    [row] = await tools.lag(broker, group, prefix)
    assert row == {"topic": topic, "partition": tp.partition, "committed": 1, "end": 3, "lag": 2}


def test_the_commands_print_json(broker: str, prefix: str, monkeypatch: pytest.MonkeyPatch) -> None:
    from clawdesk.cli import cli
    from clawdesk.settings import connection_settings

    monkeypatch.setenv("KAFKA_BOOTSTRAP_SERVERS", broker)
    connection_settings.cache_clear()
    runner = CliRunner()
    try:
        topic = f"{prefix}.inbound"
        produced = runner.invoke(cli, ["topics", "produce", topic], input=message("c", "hello"))
        assert produced.exit_code == 0, produced.output
        refused = runner.invoke(cli, ["topics", "produce", topic], input='{"text": 1}')
        assert refused.exit_code == 2 and "not a valid InboundMessage" in refused.output
        head = runner.invoke(cli, ["topics", "head", topic])
        [line] = head.stdout.splitlines()
        assert json.loads(line)["value"]["text"] == "hello"
        listed = runner.invoke(cli, ["topics", "list", "--prefix", prefix])
        assert json.loads(listed.stdout)[0]["records"] == 1
    finally:
        connection_settings.cache_clear()
