"""Build the shared services when a worker starts, off the event loop's critical path."""

from __future__ import annotations

import asyncio
import logging
import os
import socket
import time
from datetime import datetime

from agents import STAGES, stage
from clawdesk import services
from clawdesk.app import app
from clawdesk.ops import metrics, tracing
from clawdesk.runtime.supervisor import declare_topics
from clawdesk.settings import app_settings, connection_settings
from clawdesk.storage import db

log = logging.getLogger(__name__)
_started = time.monotonic()
tracing.setup(app_settings(), app_settings().stage or "worker")


# The task that builds the services: it cannot be one of their parts (it makes them),
# and it must exist once per process, whichever of the two hooks below starts it.
_building: asyncio.Task[None] | None = None


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


def _models_needed() -> tuple[bool, bool]:
    """Whether this worker's stages need the intent model, and the knowledge base."""
    name = app_settings().stage
    if not name:
        return True, True
    need = stage(name)
    return need.loads_nlu, need.loads_kb


async def _build_and_install() -> None:
    conn = connection_settings()
    try:  # from now until the first beat, an earlier run's "ready" must not count
        await asyncio.wait_for(db.mark_worker_starting(conn.database_url, worker_id()), 3.0)
    except Exception as err:  # Postgres not up yet, or a fresh database: nothing to undo
        log.info("could not mark the worker as starting", extra={"error": repr(err)})
    nlu, kb = _models_needed()
    built = await services.build(app_settings(), conn, nlu=nlu, kb=kb)
    built.ready_at = datetime.now().astimezone()
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


@app.task
async def export_lag() -> None:
    """The lag exporter role, when this worker is configured to run it."""
    if app_settings().lag_exporter:
        from clawdesk.ops.exporter import export_forever

        await export_forever(connection_settings().kafka_bootstrap_servers, app_settings())


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

    built = services.installed()
    if built is None or built.ready_at is None:
        return
    inbound = inbound_spec.name(app_settings())
    if not any(tp.topic == inbound for tp in app.consumer.assignment()):
        return
    try:
        await asyncio.wait_for(
            db.worker_heartbeat(built.pool, worker_id(), built.ready_at), timeout=2.0
        )
    except Exception as err:  # a missed beat must not stop the timer
        log.warning("readiness heartbeat failed", extra={"error": repr(err)})


@app.on_before_shutdown.connect  # type: ignore[arg-type]
async def report_stopping(sender: object, **_: object) -> None:
    """Leave the ready list as the worker stops (not 15 s later, when it goes stale)."""
    built = services.installed()
    if built is None or built.ready_at is None:
        return
    try:
        await asyncio.wait_for(db.forget_worker(built.pool, worker_id()), timeout=2.0)
    except Exception as err:
        log.warning("could not leave the ready list", extra={"error": repr(err)})


@app.on_partitions_assigned.connect  # type: ignore[arg-type]
async def log_assignment(sender: object, assigned: set[object], **_: object) -> None:
    """Log which partitions of each input topic this worker owns (ops and tests read it)."""
    from topics import inbound_spec

    name = inbound_spec.name(app_settings())
    partitions = sorted(tp.partition for tp in assigned if tp.topic == name)  # type: ignore[attr-defined]
    if name in _input_topics():
        log.info("inbound partitions assigned", extra={"partitions": partitions})
    by_topic: dict[str, list[int]] = {}
    for tp in assigned:
        by_topic.setdefault(tp.topic, []).append(tp.partition)  # type: ignore[attr-defined]
    owned = {t: sorted(p) for t, p in by_topic.items() if t in _input_topics()}
    log.info(
        "partitions assigned",
        extra={"group": app.conf.id, "member_id": member_id(), "assigned": owned},
    )
    metrics.REBALANCES.labels(app.conf.id).inc()
    _owned.clear()
    _owned.update(owned)
    # Not awaited: the rebalance must not wait on a produce.
    _reports.add(asyncio.ensure_future(report_assignment(owned)))
    for task in [t for t in _reports if t.done()]:
        _reports.discard(task)


_reports: set[asyncio.Future[None]] = set()
_owned: dict[str, list[int]] = {}  # the latest assignment, repeated by the timer
_declared: list[bool] = []  # the workers topic was declared by this process


@app.timer(interval=app_settings().worker_report_interval_s)
async def repeat_assignment() -> None:
    """Say again what this worker owns: a report that stops coming means it is gone."""
    if member_id():
        await report_assignment(dict(_owned))


@app.on_before_shutdown.connect  # type: ignore[arg-type]
async def report_leaving(sender: object, **_: object) -> None:
    """Tell ops this worker is stopping, before it leaves its group."""
    if member_id():
        await report_assignment({}, leaving=True)


def _input_topics() -> set[str]:
    """The pipeline topics this worker's stages consume (not changelogs, not Faust's)."""
    from topics import ALL_TOPICS

    settings = app_settings()
    names = [settings.stage] if settings.stage else list(STAGES)
    suffixes = {suffix for name in names for suffix in stage(name).inputs}
    return {spec.name(settings) for spec in ALL_TOPICS if spec.suffix in suffixes}


def member_id() -> str:
    """This worker's member id in its consumer group ("" before the first join).

    Faust runs aiokafka in a thread of its own; the id is read from its coordinator."""
    thread = getattr(app.consumer, "_thread", None)
    consumer = getattr(thread, "_consumer", None)
    coordinator = getattr(consumer, "_coordinator", None)
    return str(getattr(coordinator, "member_id", "") or "")


async def report_assignment(assignment: dict[str, list[int]], *, leaving: bool = False) -> None:
    """Tell ops what this worker owns now (the workers topic, read by `clawdesk status`)."""
    from schemas import WorkerReport
    from topics.streams import worker_topic

    report = WorkerReport(
        group=app.conf.id,
        stage=app_settings().stage,
        member_id=member_id(),
        host=socket.gethostname(),
        pid=os.getpid(),
        assignment=assignment,
        leaving=leaving,
    )
    try:
        if not _declared:
            # A send-only topic: nothing else creates it, and a produce would create it
            # with the broker's default partition count (the reader reads partition 0).
            await declare_topics(
                connection_settings().kafka_bootstrap_servers, {worker_topic.get_topic_name(): 1}
            )
            _declared.append(True)
        # Straight to the producer and acknowledged: a report is small and rare, and must
        # not sit in a buffer behind a rebalance.
        await app.producer.send_and_wait(
            worker_topic.get_topic_name(),
            report.member_id.encode(),
            report.to_bytes(),
            partition=0,
            timestamp=None,
            headers=None,
        )
    except Exception as err:  # ops information only: never worth a crash
        log.warning("could not report the assignment", extra={"error": repr(err)})


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
