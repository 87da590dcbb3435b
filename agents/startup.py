"""Build the shared services when a worker starts, off the event loop's critical path."""

from __future__ import annotations

import asyncio
import logging
import time

from clawdesk import metrics, services
from clawdesk.app import app
from clawdesk.settings import app_settings, connection_settings

log = logging.getLogger(__name__)
_started = time.monotonic()


_building: asyncio.Task[None] | None = None


def _start_building() -> asyncio.Task[None]:
    """The one task that builds the services (started at most once per process)."""
    global _building
    if _building is None:
        _building = asyncio.ensure_future(_build_and_install())
    return _building


async def _build_and_install() -> None:
    built = await services.build(app_settings(), connection_settings())
    services.install(built)
    log.info("services ready", extra={"seconds": round(time.monotonic() - _started, 2)})
    _serve_metrics()


@app.on_partitions_revoked.connect  # type: ignore[arg-type]
async def build_while_joining(sender: object, revoked: set[object], **_: object) -> None:
    """Start loading the models as the first group join begins.

    Faust starts `app.task`s only once the worker is ready, after the join, which left
    the ~3 s the broker takes to complete a join unused. The join begins with a
    (possibly empty) revocation, when the main thread has nothing else to do, so the
    import of torch and the model loads get the interpreter to themselves.
    """
    _start_building()


@app.task
async def start_services() -> None:
    """Open connections and load models (if the group join has not started it already)."""
    await _start_building()


def _serve_metrics() -> None:
    settings = app_settings()
    if settings.metrics_port:
        from prometheus_client import start_http_server

        try:
            start_http_server(settings.metrics_port, addr=settings.metrics_host)
        except OSError:
            log.warning("metrics port in use", extra={"port": settings.metrics_port})


@app.on_partitions_assigned.connect  # type: ignore[arg-type]
async def log_assignment(sender: object, assigned: set[object], **_: object) -> None:
    """Log which inbound partitions this worker owns (ops and tests read it)."""
    from topics import inbound_spec

    name = inbound_spec.name(app_settings())
    partitions = sorted(tp.partition for tp in assigned if tp.topic == name)  # type: ignore[attr-defined]
    log.info("inbound partitions assigned", extra={"partitions": partitions})


@app.timer(interval=10.0)
async def measure_consumer_lag() -> None:
    """Publish how far behind the high watermark each owned partition's commit is."""
    consumer = app.consumer
    committed = getattr(consumer, "_committed_offset", {})
    for tp in consumer.assignment():
        highwater = consumer.highwater(tp)
        if highwater is None:
            continue
        done = committed.get(tp) or 0
        metrics.CONSUMER_LAG.labels(tp.topic, str(tp.partition)).set(max(highwater - done, 0))
