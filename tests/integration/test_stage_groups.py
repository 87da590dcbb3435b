"""Each stage in its own consumer group, on the real broker: two nlu workers split the
nlu stage's partitions while every other stage runs one worker, and each message is
answered once with its conversation memory intact, also while a third nlu worker joins
and two leave (a clean stop and kill -9)."""

from __future__ import annotations

import asyncio
import time

import pytest

from agents import STAGE_NAMES
from clawdesk.bench.harness import Harness, Received, wait_for
from clawdesk.ops.groups import GroupReader, GroupView
from schemas import AcceptedMessage, InboundMessage, Reply
from tests.integration.conftest import Pipeline
from topics import accepted_spec, outbound_spec

pytestmark = pytest.mark.integration
START_TIMEOUT = 300.0  # eight workers start at once on a loaded machine; nlu trains its model


def start_layout(pipeline: Pipeline, nlu_workers: int) -> None:
    """One worker per stage, `nlu_workers` for the nlu stage."""
    for stage in STAGE_NAMES:
        for i in range(nlu_workers if stage == "nlu" else 1):
            pipeline.start_worker(f"{stage}-{i + 1}", stage=stage)


async def settled_groups(
    pipeline: Pipeline, members: dict[str, int], timeout: float
) -> dict[str, GroupView]:
    """The stages' groups once each has its expected members, all partitions owned."""
    deadline = time.monotonic() + timeout
    async with GroupReader(pipeline.bootstrap, pipeline.settings) as reader:
        while True:
            views = {v.stage: v for v in await reader.observe()}
            if all(
                len(views[s].members) == n and _owned(views[s]) == _inputs(views[s])
                for s, n in members.items()
            ):
                return views
            if time.monotonic() > deadline:
                summary = {s: [m.assignment for m in v.members] for s, v in views.items()}
                raise AssertionError(f"groups did not settle: {summary}")
            await asyncio.sleep(0.5)


def _owned(view: GroupView) -> set[tuple[str, int]]:
    return {(t, p) for m in view.members for t, parts in m.assignment.items() for p in parts}


def _inputs(view: GroupView) -> set[tuple[str, int]]:
    return {(p.topic, p.partition) for p in view.partitions}


def replies(records: list[Received]) -> list[Reply]:
    return [Reply.from_bytes(r.value) for r in records]


# Nine workers start here; on a loaded 2-core machine that alone took ~4 minutes.
@pytest.mark.timeout(600)
async def test_two_nlu_workers_split_their_group_and_every_message_is_answered_once(
    pipeline: Pipeline, harness: Harness
) -> None:
    out = await harness.follow(outbound_spec)
    accepted = await harness.follow(accepted_spec)
    start_layout(pipeline, nlu_workers=2)
    expected = {stage: 2 if stage == "nlu" else 1 for stage in STAGE_NAMES}
    views = await settled_groups(pipeline, expected, START_TIMEOUT)

    nlu = views["nlu"]
    assert nlu.group == f"{pipeline.app_id}-nlu"
    first, second = ({(t, p) for t, ps in m.assignment.items() for p in ps} for m in nlu.members)
    assert first and second and not first & second, "the two nlu workers split the partitions"
    assert first | second == _inputs(nlu)
    for stage in STAGE_NAMES:
        assert views[stage].group == f"{pipeline.app_id}-{stage}"

    convs = [f"conv-groups-{i}" for i in range(12)]
    asked = [await harness.ask(f"How do I return item number {i}?", c) for i, c in enumerate(convs)]
    ids = {m.event_id for m in asked}
    await wait_for(out, lambda rs: ids <= {r.in_reply_to for r in replies(rs)}, START_TIMEOUT)
    # The second turn of each conversation: ingest attaches memory that holds the
    # customer's first message and the bot's reply, which it recorded from the replies
    # topic (the reply stage no longer writes another stage's table).
    thanks = [await harness.ask("thanks", c) for c in convs]
    ids |= {m.event_id for m in thanks}
    await wait_for(out, lambda rs: ids <= {r.in_reply_to for r in replies(rs)}, 60)

    answered = [r.in_reply_to for r in replies(out) if r.in_reply_to in ids]
    assert sorted(answered) == sorted(ids), "every message answered exactly once"
    later = {m.event_id for m in thanks}
    memories = [
        AcceptedMessage.from_bytes(r.value).memory
        for r in accepted
        if AcceptedMessage.from_bytes(r.value).message.event_id in later
    ]
    assert len(memories) == len(convs)
    assert all([t.role for t in m.turns] == ["customer", "bot"] for m in memories)

    # A third nlu worker joins mid-stream; then one leaves cleanly and one is killed.
    pipeline.start_worker("nlu-3", stage="nlu")
    third: list[InboundMessage] = []
    for i, conv in enumerate(convs):
        third.append(await harness.ask(f"What's the status of order #100{i % 5 + 1}?", conv))
        if i == 3:
            await settled_groups(pipeline, {"nlu": 3}, START_TIMEOUT)
            pipeline.stop_worker("nlu-1")
        if i == 7:
            pipeline.stop_worker("nlu-2", kill=True)
    ids |= {m.event_id for m in third}
    await wait_for(out, lambda rs: ids <= {r.in_reply_to for r in replies(rs)}, START_TIMEOUT)
    answered = [r.in_reply_to for r in replies(out) if r.in_reply_to in ids]
    assert sorted(answered) == sorted(ids), "nothing lost or answered twice across the changes"
    last = {m.event_id for m in third}
    memories = [
        AcceptedMessage.from_bytes(r.value).memory
        for r in accepted
        if AcceptedMessage.from_bytes(r.value).message.event_id in last
    ]
    # at least once: a redelivered accepted message may repeat, with the same memory
    assert {len(m.turns) for m in memories} == {4}
