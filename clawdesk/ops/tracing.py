"""OpenTelemetry tracing of a message's path: gateway → every stage → dispatch.

Off by default, and then free: no provider is installed, and every helper here returns
at its first line (no header is parsed or written, no span object is made). On
(`CLAWDESK_TRACING=true`), each process exports its spans over OTLP/HTTP to
`CLAWDESK_OTLP_ENDPOINT` (Jaeger in compose.yaml), and the W3C trace context travels in
the Kafka record headers from topic to topic, so one trace shows a message's whole path,
with the time it waited in each topic between the stages' spans.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any

from opentelemetry import propagate
from opentelemetry.trace import SpanKind

from clawdesk.settings import AppSettings

if TYPE_CHECKING:
    from opentelemetry.sdk.trace import TracerProvider  # deferred: see above
    from opentelemetry.sdk.trace.export import SpanExporter
    from opentelemetry.trace import Tracer

log = logging.getLogger(__name__)

# A process-level global on purpose, not a `Services` part: OpenTelemetry's API is
# process-global by design (one tracer provider per process, `trace.set_tracer_provider`),
# the gateway and the CLI trace without any worker services, and the stages read it on
# every record, before the services may even be built. One tracer per process, set
# once by `setup`, is exactly what the OTel API expects.
_tracer: Tracer | None = None  # None: tracing is off


def enabled() -> bool:
    """Whether this process traces."""
    return _tracer is not None


def setup(settings: AppSettings, process: str, exporter: SpanExporter | None = None) -> None:
    """Install a tracer provider for this process (`process`: gateway, or a stage) when
    tracing is on, exporting to OTLP, or to `exporter` (tests: an in-memory one)."""
    global _tracer
    if not settings.tracing and exporter is None:
        return
    # deferred: the OpenTelemetry SDK, ~70 ms (-X importtime); tracing is off by default
    from opentelemetry.sdk.resources import Resource
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import (  # deferred: see above
        BatchSpanProcessor,
        SimpleSpanProcessor,
    )

    resource = Resource.create(
        {"service.name": f"clawdesk-{process}", "service.namespace": settings.app_id}
    )
    provider = TracerProvider(resource=resource)
    if exporter is not None:
        provider.add_span_processor(SimpleSpanProcessor(exporter))
    else:
        # deferred: the OTLP exporter (protobuf), ~120 ms; only when exporting over OTLP
        from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter

        otlp = OTLPSpanExporter(endpoint=settings.otlp_endpoint, timeout=5)
        provider.add_span_processor(BatchSpanProcessor(otlp))
    _install(provider)
    log.info("tracing on", extra={"service": process, "endpoint": settings.otlp_endpoint})


def _install(provider: TracerProvider) -> None:
    global _tracer
    _tracer = provider.get_tracer("clawdesk")


def shutdown() -> None:
    """Stop tracing (tests; a stopping process flushes through the provider's atexit)."""
    global _tracer
    _tracer = None


def _carrier(headers: Mapping[str, Any] | Any) -> dict[str, str]:
    """Record headers (a mapping, or aiokafka's list of pairs) as a text carrier."""
    pairs = headers.items() if isinstance(headers, Mapping) else (headers or ())
    return {
        str(k): (v.decode("latin-1") if isinstance(v, bytes | bytearray) else str(v))
        for k, v in pairs
    }


@contextmanager
def span(name: str, headers: Mapping[str, Any] | Any = None, **attributes: Any) -> Iterator[None]:
    """A span for work on one record, the child of the context in its `headers` (the
    span of the stage that sent it), current for the work inside: sends made there
    carry it on (`outgoing`)."""
    if _tracer is None:
        yield
        return

    parent = propagate.extract(_carrier(headers)) if headers else None
    with _tracer.start_as_current_span(
        name, context=parent, kind=SpanKind.CONSUMER, attributes=attributes
    ):
        yield


def outgoing() -> list[tuple[str, bytes]] | None:
    """Headers that carry the current span to the next stage; None when off."""
    if _tracer is None:
        return None

    carrier: dict[str, str] = {}
    propagate.inject(carrier)
    return [(k, v.encode("latin-1")) for k, v in carrier.items()]


def header_kwargs() -> dict[str, Any]:
    """`headers=` for a producer call when tracing is on; nothing when off."""
    headers = outgoing()
    return {} if headers is None else {"headers": headers}


@contextmanager
def batch_span(name: str, headers: list[Any] | None) -> Iterator[None]:
    """One span per record of a batch worked on together (the dispatcher sends a batch
    side by side), each the child of its own record's context, all ending with the
    batch; nothing when off or without headers."""
    if _tracer is None or not headers:
        yield
        return

    spans = [
        _tracer.start_span(
            name,
            context=propagate.extract(_carrier(h)) if h else None,
            kind=SpanKind.CONSUMER,
            attributes={"clawdesk.stage": name},
        )
        for h in headers
    ]
    try:
        yield
    finally:
        for s in spans:
            s.end()
