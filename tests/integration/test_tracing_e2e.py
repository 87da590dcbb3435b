"""One customer message through the gateway and a worker of every stage, traced over
OTLP/HTTP to a fake collector: one trace, a span per stage, each the child of the one
before it across the topics (context in the record headers)."""

from __future__ import annotations

import asyncio
import itertools
import subprocess
import sys
import time
from collections.abc import Iterator

import httpx
import pytest

from clawdesk.bench.harness import Harness, wait_for
from clawdesk.runtime.ports import free_port, wait_for_port
from clawdesk.runtime.stack import stop_process
from schemas import Reply
from tests.fakes.base import Served
from tests.fakes.otlp import FakeCollector, ReceivedSpan
from tests.integration.conftest import Pipeline
from topics import outbound_spec

pytestmark = pytest.mark.integration
START_TIMEOUT = 240.0
CHAIN = ["gateway", "ingest", "nlu", "retrieve", "skills", "reply", "dispatch"]


@pytest.fixture()
def collector() -> Iterator[FakeCollector]:
    served = Served(FakeCollector()).start()
    yield served.fake  # type: ignore[misc]
    served.stop()


def traced_env(collector: FakeCollector) -> dict[str, str]:
    return {
        "CLAWDESK_TRACING": "true",
        "CLAWDESK_OTLP_ENDPOINT": f"{collector.base_url}/v1/traces",
    }


@pytest.fixture()
def gateway(pipeline: Pipeline, collector: FakeCollector) -> Iterator[str]:
    """The real gateway, tracing to the collector."""
    port = free_port()
    env = {**pipeline.env("gateway"), **traced_env(collector), "CLAWDESK_GATEWAY_PORT": str(port)}
    with open(pipeline.root / "gateway.log", "ab") as log:
        proc = subprocess.Popen(
            [sys.executable, "-m", "clawdesk.cli", "gateway"],
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
        )
    wait_for_port("127.0.0.1", port, 60)
    yield f"http://127.0.0.1:{port}"
    stop_process(proc)


@pytest.fixture()
def traced_worker(pipeline: Pipeline, collector: FakeCollector) -> None:
    """Every stage in one worker process: the headers still carry the context from topic
    to topic, and one process starts faster than seven."""
    pipeline.start_worker("w1", extra_env=traced_env(collector))


async def spans_of(collector: FakeCollector, event_id: str) -> list[ReceivedSpan]:
    """The message's trace once every stage's span is in (span processors export in
    batches every few seconds), or what came within 30 s."""
    deadline = time.monotonic() + 30
    while True:
        roots = [s for s in collector.spans if s.attributes.get("clawdesk.event_id") == event_id]
        spans = collector.trace(roots[0].trace_id) if roots else []
        if {s.name for s in spans} >= set(CHAIN) or time.monotonic() > deadline:
            return spans
        await asyncio.sleep(0.5)


async def test_one_message_is_one_trace_with_a_span_per_stage(
    traced_worker: None, gateway: str, harness: Harness, collector: FakeCollector
) -> None:
    out = await harness.follow(outbound_spec)
    async with httpx.AsyncClient(base_url=gateway) as http:
        posted = await http.post(
            "/api/web/messages",
            json={"text": "How long does shipping to Germany take?", "client_message_id": "t1"},
        )
    assert posted.status_code == 202, posted.text
    event_id = posted.json()["event_id"]
    await wait_for(
        out,
        lambda rs: any(Reply.from_bytes(r.value).in_reply_to == event_id for r in rs),
        START_TIMEOUT,
    )
    spans = await spans_of(collector, event_id)
    by_name = {s.name: s for s in spans}
    assert [n for n in CHAIN if n in by_name] == CHAIN, [s.name for s in spans]
    for parent, child in itertools.pairwise(CHAIN):
        assert by_name[child].parent_span_id == by_name[parent].span_id, (parent, child)
        # Queue time shows: a stage starts after the one before it started.
        assert by_name[child].start_ns >= by_name[parent].start_ns
    assert by_name["gateway"].service == "clawdesk-gateway"
    assert by_name["nlu"].service == "clawdesk-worker"
