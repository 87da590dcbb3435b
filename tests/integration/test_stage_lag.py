"""Lag read from the broker: a stopped stage's group falls behind while traffic goes on,
and catches up when its worker comes back (the ingest stage alone: it starts fast)."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable

import pytest

from clawdesk.bench.harness import Harness
from clawdesk.ops.groups import GroupReader, GroupView
from clawdesk.ops.status import observe
from tests.integration.conftest import Pipeline

pytestmark = pytest.mark.integration
TIMEOUT = 90.0


async def until(
    pipeline: Pipeline, check: Callable[[GroupView], bool], timeout: float = TIMEOUT
) -> GroupView:
    """The ingest group once `check` holds for it."""
    deadline = time.monotonic() + timeout
    async with GroupReader(pipeline.bootstrap, pipeline.settings) as reader:
        while True:
            [view] = await reader.observe(["ingest"])
            if check(view):
                return view
            if time.monotonic() > deadline:
                raise AssertionError(f"ingest group never matched: {view}")
            await asyncio.sleep(0.5)


async def test_a_stopped_stage_shows_lag_that_falls_to_zero_after_restart(
    pipeline: Pipeline, harness: Harness
) -> None:
    pipeline.start_worker("ingest-1", stage="ingest")
    await harness.ask("hello", "conv-lag-0")
    await until(pipeline, lambda v: len(v.members) == 1 and v.lag == 0 and _committed(v) >= 1)

    pipeline.stop_worker("ingest-1")
    await until(pipeline, lambda v: not v.members)
    for i in range(6):
        await harness.ask(f"where is my order {i}?", f"conv-lag-{i}")
    stopped = await until(pipeline, lambda v: v.lag == 6)
    assert stopped.members == []
    rows = await observe(pipeline.bootstrap, pipeline.settings, interval_s=0.2)
    ingest = next(r for r in rows if r["stage"] == "ingest")
    assert ingest["lag"] == 6 and ingest["members"] == []

    pipeline.start_worker("ingest-2", stage="ingest")
    caught_up = await until(pipeline, lambda v: len(v.members) == 1 and v.lag == 0)
    assert _committed(caught_up) == 7


def _committed(view: GroupView) -> int:
    inbound = f"{view.group.removesuffix('-ingest')}.inbound"
    return sum(p.committed or 0 for p in view.partitions if p.topic == inbound)
