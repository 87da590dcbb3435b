"""End to end on the real broker, Postgres and Redis, with real Faust workers."""

from __future__ import annotations

import asyncio
import json
import time

import psycopg
import pytest

from clawdesk.bench.harness import Harness, Received, wait_for
from schemas import AcceptedMessage, ConversationSnapshot, NluResult, Reply, new_id
from tests.integration.conftest import Pipeline
from topics import dead_letter_spec, nlu_spec, outbound_spec

pytestmark = pytest.mark.integration
START_TIMEOUT = 90.0  # first start trains the demo NLU model and embeds the demo KB


def replies(records: list[Received]) -> list[Reply]:
    return [Reply.from_bytes(r.value) for r in records]


def replies_to(records: list[Received], event_id: str) -> list[Reply]:
    return [r for r in replies(records) if r.in_reply_to == event_id]


async def answered(out: list[Received], event_id: str, timeout: float = 30.0) -> Reply:
    await wait_for(out, lambda rs: bool(replies_to(rs, event_id)), timeout)
    return replies_to(out, event_id)[0]


async def test_message_passes_every_stage_and_is_stored(pipeline: Pipeline, harness: Harness):
    out = await harness.follow(outbound_spec)
    pipeline.start_worker()
    msg = await harness.ask("How long does shipping to Germany take?")
    reply = await answered(out, msg.event_id, START_TIMEOUT)
    await harness.ask("hello", msg.conversation_id)  # later traffic flushes any late duplicate
    await wait_for(out, lambda rs: len(rs) >= 2, 30)
    assert len(replies_to(out, msg.event_id)) == 1
    assert reply.sources, "a shipping question is answered from the knowledge base"
    with psycopg.connect(pipeline.database_url) as conn:
        authors = [
            r[0]
            for r in conn.execute(
                'SELECT author FROM messages WHERE conversation_id = %s ORDER BY "timestamp"',
                (msg.conversation_id,),
            )
        ]
        status = conn.execute(
            "SELECT status FROM deliveries WHERE reply_id = %s", (reply.reply_id,)
        ).fetchone()
        intent = conn.execute(
            "SELECT intent FROM intents WHERE message_id = %s", (msg.event_id,)
        ).fetchone()
    assert authors[:2] == ["customer", "bot"]
    assert status == ("sent",)
    assert intent is not None


async def test_same_channel_message_twice_gets_one_reply(pipeline: Pipeline, harness: Harness):
    out = await harness.follow(outbound_spec)
    pipeline.start_worker()
    warm = await harness.ask("hi")
    await answered(out, warm.event_id, START_TIMEOUT)
    conv, channel_id = f"conv-{new_id()[:8]}", new_id()
    first = await harness.ask("Do you accept PayPal?", conv, channel_message_id=channel_id)
    second = await harness.ask("Do you accept PayPal?", conv, channel_message_id=channel_id)
    marker = await harness.ask("thanks", conv)
    await answered(out, marker.event_id)
    assert len(replies_to(out, first.event_id)) == 1
    assert replies_to(out, second.event_id) == []


async def test_bad_events_are_dead_lettered_and_the_stream_goes_on(
    pipeline: Pipeline, harness: Harness
):
    out = await harness.follow(outbound_spec)
    dead = await harness.follow(dead_letter_spec)
    pipeline.start_worker()
    warm = await harness.ask("hi")
    await answered(out, warm.event_id, START_TIMEOUT)

    from topics import inbound_spec

    await harness.send(inbound_spec, "conv-bad", b'{"not": "an event"')
    await harness.ask("hello", tenant_id="no-such-tenant")
    # A well-formed NLU result for a tenant with no knowledge base makes retrieve raise.
    accepted = AcceptedMessage(
        conversation_id="conv-ghost",
        tenant_id="ghost",
        channel="web",
        message=(ghost := (await _inbound("where is my refund", "ghost"))),
        memory=ConversationSnapshot(),
    )
    nlu = NluResult(
        **accepted.lineage(),
        accepted=accepted,
        intent="refund_request",
        confidence=0.9,
        language="en",
        model_version="test",
    )
    await harness.send(nlu_spec, "conv-ghost", nlu.to_bytes())
    after = await harness.ask("What payment methods do you accept?")
    await answered(out, after.event_id)

    await wait_for(dead, lambda rs: len(rs) >= 3, 30)
    letters = [json.loads(r.value) for r in dead]
    by_stage = {(letter["stage"], letter["error"].split(":")[0]) for letter in letters}
    assert ("ingest", "ValidationError") in by_stage
    assert any(
        s == "ingest" and "unknown tenant" in json.dumps(letter)
        for letter in letters
        for s in [letter["stage"]]
    )
    assert any(
        letter["stage"] == "retrieve" and ghost.event_id in letter["event"] for letter in letters
    )
    assert all(letter["attempts"] >= 1 for letter in letters)


async def _delivery_recorded(database_url: str, reply_id: str, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with psycopg.connect(database_url) as conn:
            row = conn.execute(
                "SELECT status FROM deliveries WHERE reply_id = %s", (reply_id,)
            ).fetchone()
        if row == ("sent",):
            return
        await asyncio.sleep(0.1)
    raise TimeoutError(f"reply {reply_id} was not recorded as sent")


async def _inbound(text: str, tenant: str):
    from schemas import Channel, InboundMessage

    return InboundMessage(
        conversation_id="conv-ghost",
        tenant_id=tenant,
        channel=Channel.WEB,
        channel_message_id=new_id(),
        customer_id="c",
        text=text,
    )


async def test_restart_resumes_offsets_and_conversation_memory(
    pipeline: Pipeline, harness: Harness
):
    out = await harness.follow(outbound_spec)
    pipeline.start_worker("w1")
    first = await harness.ask("What's the status of order #1002?")
    reply = await answered(out, first.event_id, START_TIMEOUT)
    assert "#1002" in reply.text
    # Let the delivery record and the offset commit (every second) land, then crash:
    # this test is about resuming from committed state, not the send/record window.
    await _delivery_recorded(pipeline.database_url, reply.reply_id)
    await asyncio.sleep(2.5)
    pipeline.stop_worker("w1", kill=True)  # a crash: no clean leave, no final commit

    # A new worker with an empty data dir must rebuild memory from the changelog.
    started = time.monotonic()
    pipeline.start_worker("w2")
    follow_up = await harness.ask("where is it now?", first.conversation_id)
    try:
        second = await answered(out, follow_up.event_id, START_TIMEOUT)
    except TimeoutError:
        await _print_progress(harness)
        raise
    print(f"restarted worker answered after {time.monotonic() - started:.1f}s")
    assert "#1002" in second.text, "the order number mentioned earlier is remembered"
    assert len(replies_to(out, first.event_id)) == 1


async def _print_progress(harness: Harness) -> None:
    """How far the pipeline got: the records on each stage's topic, per key."""
    from topics import ALL_TOPICS

    seen = {spec.suffix: await harness.follow(spec) for spec in ALL_TOPICS}
    await asyncio.sleep(3)
    for suffix, records in seen.items():
        keys = [r.key.decode() if r.key else "-" for r in records]
        print(f"{suffix}: {len(records)} records {sorted(set(keys))}")


async def test_two_workers_split_partitions_and_answer_once(pipeline: Pipeline, harness: Harness):
    out = await harness.follow(outbound_spec)
    pipeline.start_worker("w1")
    pipeline.start_worker("w2")
    warm = await harness.ask("hi")
    await answered(out, warm.event_id, START_TIMEOUT)
    sent = [
        await harness.ask(f"How do I return item number {i}?", f"conv-split-{i}") for i in range(40)
    ]
    ids = {m.event_id for m in sent}
    try:
        await wait_for(out, lambda rs: ids <= {r.in_reply_to for r in replies(rs)}, 60)
    except TimeoutError:
        # Which stage, key and partition stopped: with two workers, a stall of one
        # worker's partitions shows as keys missing from every topic after some stage.
        await _print_progress(harness)
        print("outbound partitions with replies:", sorted({r.partition for r in out}))
        raise
    per_message = [len(replies_to(out, i)) for i in ids]
    assert per_message == [1] * 40
    assigned = [_assigned(pipeline.log(name)) for name in ("w1", "w2")]
    assert all(assigned), f"both workers own inbound partitions: {assigned}"
    assert not (assigned[0] & assigned[1])


def _assigned(log: str) -> set[int]:
    """The inbound partitions a worker logged as its latest assignment."""
    latest: set[int] = set()
    for line in log.splitlines():
        if '"inbound partitions assigned"' in line or "inbound partitions assigned" in line:
            try:
                latest = set(json.loads(line[line.index("{") :])["partitions"])
            except (ValueError, KeyError):
                continue
    return latest
