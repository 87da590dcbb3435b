"""Build the shared services when a worker starts, off the event loop's critical path."""

from __future__ import annotations

import asyncio
import logging
import socket
import time
from datetime import datetime

from clawdesk import db, metrics, services
from clawdesk.app import app
from clawdesk.settings import app_settings, connection_settings

log = logging.getLogger(__name__)
_started = time.monotonic()


_building: asyncio.Task[None] | None = None
_ready_at: datetime | None = None


def worker_id() -> str:
    """This worker's name in `worker_heartbeats`: its host and data dir, the same across
    its restarts (so a restart replaces its old row), distinct between workers."""
    return f"{socket.gethostname()}:{app_settings().data_dir.resolve()}"


def _start_building() -> asyncio.Task[None]:
    """The one task that builds the services (started at most once per process)."""
    global _building
    if _building is None:
        _building = asyncio.ensure_future(_build_and_install())
    return _building


async def _build_and_install() -> None:
    global _ready_at
    conn = connection_settings()
    try:  # from now until the first beat, an earlier run's "ready" must not count
        await asyncio.wait_for(db.mark_worker_starting(conn.database_url, worker_id()), 3.0)
    except Exception as err:  # Postgres not up yet, or a fresh database: nothing to undo
        log.info("could not mark the worker as starting", extra={"error": repr(err)})
    built = await services.build(app_settings(), conn)
    services.install(built)
    _ready_at = datetime.now().astimezone()
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


@app.timer(interval=app_settings().worker_heartbeat_s)
async def report_ready() -> None:
    """Tell the gateways that this worker answers now: its services are built (the demo
    model trained, the KB embedded) and it owns inbound partitions. The gateway's
    /ready waits for this, so "ready" means a message sent now is answered now."""
    from topics import inbound_spec

    if _ready_at is None:
        return
    inbound = inbound_spec.name(app_settings())
    if not any(tp.topic == inbound for tp in app.consumer.assignment()):
        return
    try:
        await asyncio.wait_for(
            db.worker_heartbeat(services.current().pool, worker_id(), _ready_at), timeout=2.0
        )
    except Exception as err:  # a missed beat must not stop the timer
        log.warning("readiness heartbeat failed", extra={"error": repr(err)})


@app.on_before_shutdown.connect  # type: ignore[arg-type]
async def report_stopping(sender: object, **_: object) -> None:
    """Leave the ready list as the worker stops (not 15 s later, when it goes stale)."""
    if _ready_at is None:
        return
    try:
        await asyncio.wait_for(db.forget_worker(services.current().pool, worker_id()), timeout=2.0)
    except Exception as err:
        log.warning("could not leave the ready list", extra={"error": repr(err)})


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
