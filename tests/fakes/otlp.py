"""A fake OpenTelemetry collector: OTLP/HTTP traces (protobuf `ExportTraceServiceRequest`
POSTed to /v1/traces, as the OTLP specification and Jaeger's collector take them)."""

from __future__ import annotations

import threading
from dataclasses import dataclass

from fastapi import Request, Response
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import (
    ExportTraceServiceRequest,
    ExportTraceServiceResponse,
)

from tests.fakes.base import FakeProvider


@dataclass(frozen=True)
class ReceivedSpan:
    """One exported span: who sent it, what it is, and where it sits in its trace."""

    service: str
    name: str
    trace_id: str
    span_id: str
    parent_span_id: str
    start_ns: int
    end_ns: int
    attributes: dict[str, str]


class FakeCollector(FakeProvider):
    """Keeps every span it receives."""

    name = "otlp"

    def __init__(self) -> None:
        super().__init__()
        self.spans: list[ReceivedSpan] = []
        self._spans_lock = threading.Lock()
        self.app.post("/v1/traces")(self._traces)

    async def _traces(self, request: Request) -> Response:
        if request.headers.get("content-type") != "application/x-protobuf":
            return Response(status_code=415)
        export = ExportTraceServiceRequest.FromString(await request.body())
        received = []
        for resource_spans in export.resource_spans:
            service = next(
                (
                    a.value.string_value
                    for a in resource_spans.resource.attributes
                    if a.key == "service.name"
                ),
                "",
            )
            for scope in resource_spans.scope_spans:
                for span in scope.spans:
                    received.append(
                        ReceivedSpan(
                            service=service,
                            name=span.name,
                            trace_id=span.trace_id.hex(),
                            span_id=span.span_id.hex(),
                            parent_span_id=span.parent_span_id.hex(),
                            start_ns=span.start_time_unix_nano,
                            end_ns=span.end_time_unix_nano,
                            attributes={a.key: a.value.string_value for a in span.attributes},
                        )
                    )
        with self._spans_lock:
            self.spans.extend(received)
        return Response(
            ExportTraceServiceResponse().SerializeToString(),
            media_type="application/x-protobuf",
        )

    def trace(self, trace_id: str) -> list[ReceivedSpan]:
        """The spans of one trace, in start order."""
        with self._spans_lock:
            return sorted(
                (s for s in self.spans if s.trace_id == trace_id), key=lambda s: s.start_ns
            )
