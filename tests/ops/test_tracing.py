"""Tracing: spans per stage carried across records in their headers, and nothing at all
when it is off (in-memory exporter, no broker)."""

from __future__ import annotations

import itertools
from collections.abc import Iterator

import pytest
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from clawdesk.ops import tracing
from clawdesk.settings import AppSettings

STAGES = ("ingest", "nlu", "retrieve", "skills", "reply")


@pytest.fixture()
def spans() -> Iterator[InMemorySpanExporter]:
    exporter = InMemorySpanExporter()
    tracing.setup(AppSettings(_env_file=None), "test", exporter=exporter)  # type: ignore[call-arg]
    yield exporter
    tracing.shutdown()


def test_off_by_default_costs_nothing() -> None:
    tracing.setup(AppSettings(_env_file=None), "test")  # type: ignore[call-arg]
    assert not tracing.enabled()
    assert tracing.outgoing() is None
    assert tracing.header_kwargs() == {}
    with tracing.span("ingest", {"traceparent": b"garbage"}):
        pass  # no parsing of headers, no span


def test_one_message_is_one_trace_with_a_span_per_stage(spans: InMemorySpanExporter) -> None:
    """As the records travel: each stage's span starts from the headers of the record it
    read, and the record it sends carries that span on."""
    with tracing.span("gateway", None):
        headers = tracing.outgoing()
    for stage in STAGES:
        with tracing.span(stage, dict(headers or [])):
            headers = tracing.outgoing()
    with tracing.batch_span("dispatch", [headers, None]):
        pass
    finished = spans.get_finished_spans()
    by_name = {s.name: s for s in finished if s.parent is not None or s.name == "gateway"}
    assert list(by_name) == ["gateway", *STAGES, "dispatch"]
    assert len({s.context.trace_id for s in by_name.values()}) == 1, "one trace"
    chain = ["gateway", *STAGES, "dispatch"]
    for parent, child in itertools.pairwise(chain):
        assert by_name[child].parent.span_id == by_name[parent].context.span_id
    # The record without context in the batch starts a trace of its own.
    assert len([s for s in finished if s.name == "dispatch"]) == 2
