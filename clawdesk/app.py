"""The Faust app of this worker process, built from settings. Start workers with
`clawdesk worker --stages …` (or `faust -A clawdesk.app worker -l info`).

With `CLAWDESK_STAGE` set, the app runs that one stage under its own id and so its own
consumer group (`AppSettings.worker_group`); unset, it runs every stage in one group."""

from __future__ import annotations

import logging
import types
from typing import Any

import aiokafka
import faust
from faust.transport.drivers import aiokafka as faust_aiokafka

from agents import modules_of
from clawdesk.ops.logs import json_handler
from clawdesk.runtime import faust_fixes
from clawdesk.settings import AppSettings, app_settings, connection_settings

log = logging.getLogger(__name__)

# Why these consumer-group timings: the Tansu broker completes a JoinGroup only after
# half the session timeout has passed (waiting for other members), so Faust's default
# 60 s session made every worker start take ~30 s, and a worker restarted after a crash
# waited for its dead predecessor's 60 s session to expire. 6 s is Kafka's minimum
# allowed session (group.min.session.timeout.ms); heartbeats run in the consumer
# thread, so a busy event loop does not get the worker evicted.
SESSION_TIMEOUT_S = 6.0
HEARTBEAT_INTERVAL_S = 1.0
REBALANCE_TIMEOUT_S = 10.0


class _FetchWaitCapped(types.ModuleType):
    """The aiokafka module as Faust's driver sees it, but with our fetch wait.

    Faust 0.15.3 hard-codes `fetch_max_wait_ms=1500` for its consumer. Tansu answers an
    idle fetch only when that wait runs out, so every hop of an idle pipeline cost up to
    1.5 s; 100 ms keeps a quiet conversation snappy at the price of more empty fetches.
    """

    def __init__(self, wait_ms: int) -> None:
        super().__init__("aiokafka")
        self._wait_ms = wait_ms

    def __getattr__(self, name: str) -> Any:
        return getattr(aiokafka, name)

    def AIOKafkaConsumer(self, *args: Any, **kwargs: Any) -> aiokafka.AIOKafkaConsumer:
        kwargs["fetch_max_wait_ms"] = self._wait_ms
        return aiokafka.AIOKafkaConsumer(*args, **kwargs)


def _cap_fetch_wait(wait_ms: int) -> None:
    faust_aiokafka.aiokafka = _FetchWaitCapped(wait_ms)


# What a shadow run (`clawdesk replay`) executes: the stages that decide, unchanged. The
# dispatcher (channels), the handoff agent (tickets), control and the timers that write
# production state are left out, so no outward effect can leave a shadow run.
SHADOW_STAGES = (
    "agents.startup",
    "agents.ingest",
    "agents.memory_events",  # the bot's turns and handoffs, into the ingest stage's memory
    "agents.nlu",
    "agents.retrieve",
    "agents.skills",
    "agents.reply",
)


def stage_modules(settings: AppSettings, modules: list[str]) -> list[str]:
    """The modules the worker discovers its agents in: its stage's `modules`, or a
    shadow run's (every stage but those with outward effects, in one app)."""
    return list(SHADOW_STAGES) if settings.shadow_run else modules


def create_app() -> faust.App:
    """Build the Faust app of the configured stage from the environment's settings."""
    settings = app_settings()
    stage = settings.stage or None
    modules = modules_of(stage)  # ValueError for an unknown stage, before any connection
    conn = connection_settings()
    if not conn.kafka_bootstrap_servers:
        raise RuntimeError(
            "KAFKA_BOOTSTRAP_SERVERS is not set: start the whole system with `clawdesk up`"
        )
    (settings.data_dir / "faust").mkdir(parents=True, exist_ok=True)
    _cap_fetch_wait(settings.consumer_fetch_max_wait_ms)
    faust_fixes.apply()
    brokers = [f"kafka://{b.strip()}" for b in conn.kafka_bootstrap_servers.split(",")]
    return faust.App(
        settings.worker_group(stage),
        broker=brokers,
        store="rocksdb://",
        datadir=str(settings.data_dir / "faust"),
        # Only this stage's agents and tables: another stage's table is never opened here.
        autodiscover=stage_modules(settings, modules),
        # No `origin`: Faust would scan (import) every clawdesk module, seconds of start-up
        # for a stage that needs a few of them.
        topic_partitions=settings.topic_partitions,
        topic_replication_factor=settings.topic_replicas,
        broker_session_timeout=SESSION_TIMEOUT_S,
        broker_heartbeat_interval=HEARTBEAT_INTERVAL_S,
        broker_rebalance_timeout=REBALANCE_TIMEOUT_S,
        consumer_auto_offset_reset="earliest",
        producer_acks=-1,
        # The one size limit (settings.max_message_bytes) the gateway's body limit and the
        # dead letters are cut to; Faust's default is 1,000,000.
        producer_max_request_size=settings.max_message_bytes,
        # at-least-once: offsets commit after processing; effects are idempotent
        processing_guarantee="at_least_once",
        broker_commit_interval=1.0,
        web_enabled=settings.worker_web_port > 0,
        web_port=settings.worker_web_port or 6066,
        web_host="127.0.0.1",
        stream_wait_empty=False,
        # The worker resets logging when it starts; this keeps our JSON lines (with extras).
        loghandlers=[json_handler()],
    )


app = create_app()
