"""Real Faust workers against the real broker, Postgres and Redis."""

from __future__ import annotations

import os
import subprocess
import sys
import uuid
from collections.abc import AsyncIterator, Generator, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from clawdesk.bench.harness import Harness
from clawdesk.runtime.stack import stop_process
from clawdesk.settings import AppSettings

# Workers repeat their assignment this often; one silent for three times as long is gone.
REPORT_INTERVAL_S = 2.0


@dataclass
class Pipeline:
    """One app id + topic prefix, and the workers running it."""

    bootstrap: str
    database_url: str
    redis_url: str
    root: Path
    models_dir: Path
    app_id: str = field(default_factory=lambda: f"t{uuid.uuid4().hex[:8]}")
    procs: dict[str, subprocess.Popen[bytes]] = field(default_factory=dict)
    extra_env: dict[str, str] = field(default_factory=dict)  # e.g. the sandbox providers

    @property
    def settings(self) -> AppSettings:
        return AppSettings(
            app_id=self.app_id,
            topic_prefix=self.app_id,
            topic_partitions=4,
            worker_report_interval_s=REPORT_INTERVAL_S,
        )

    def env(self, name: str) -> dict[str, str]:
        return {
            **os.environ,
            "KAFKA_BOOTSTRAP_SERVERS": self.bootstrap,
            "DATABASE_URL": self.database_url,
            "REDIS_URL": self.redis_url,
            "CLAWDESK_APP_ID": self.app_id,
            "CLAWDESK_TOPIC_PREFIX": self.app_id,
            "CLAWDESK_TOPIC_PARTITIONS": "4",
            "CLAWDESK_WORKER_REPORT_INTERVAL_S": str(REPORT_INTERVAL_S),
            "CLAWDESK_DATA_DIR": str(self.root / name),
            "CLAWDESK_MODELS_DIR": str(self.models_dir),
            "CLAWDESK_METRICS_PORT": "0",
            "CLAWDESK_LOG_LEVEL": "INFO",
            **self.extra_env,
            "HF_HUB_OFFLINE": "1",
        }

    def start_worker(
        self, name: str = "w1", stage: str = "", extra_env: dict[str, str] | None = None
    ) -> subprocess.Popen[bytes]:
        """Start a worker of one stage (its own consumer group), or of every stage."""
        log = open(self.log_path(name), "ab")
        proc = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "faust",
                "-A",
                "clawdesk.app",
                "worker",
                "-l",
                # debug when diagnosing a run; Faust's own loggers follow this level
                os.environ.get("CLAWDESK_TEST_WORKER_LOG_LEVEL", "info"),
                "--without-web",
            ],
            env={**self.env(name), "CLAWDESK_STAGE": stage, **(extra_env or {})},
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        self.procs[name] = proc
        return proc

    def stop_worker(self, name: str, *, kill: bool = False) -> None:
        proc = self.procs.pop(name)
        if kill:
            proc.kill()
            proc.wait()
        else:
            stop_process(proc)

    def log_path(self, name: str) -> Path:
        return self.root / f"{name}.log"

    def log(self, name: str) -> str:
        return self.log_path(name).read_text(errors="replace")

    def stop_all(self) -> None:
        for name in list(self.procs):
            self.stop_worker(name)


@pytest.hookimpl(wrapper=True, tryfirst=True)
def pytest_runtest_makereport(
    item: pytest.Item, call: pytest.CallInfo[None]
) -> Generator[None, pytest.TestReport, pytest.TestReport]:
    """Remember each phase's report so fixtures can tell whether the test failed."""
    report = yield
    setattr(item, f"report_{report.when}", report)
    return report


@pytest.fixture()
def pipeline(
    request: pytest.FixtureRequest,
    broker: str,
    database_url: str,
    redis_url: str,
    models_dir: Path,
    tmp_path: Path,
) -> Iterator[Pipeline]:
    """A pipeline with its own app id and topics; its workers stop at the end.

    When the test failed, the tail of every worker's log is printed: a flaky
    end-to-end failure is otherwise impossible to diagnose after the fact.
    """
    p = Pipeline(broker, database_url, redis_url, tmp_path, models_dir)
    yield p
    p.stop_all()
    report = getattr(request.node, "report_call", None)
    if report is not None and report.failed:
        print_log_tails(tmp_path, 150)


def print_log_tails(root: Path, lines: int) -> None:
    """Print the last `lines` of every process log under `root` (for a failed test)."""
    for path in sorted(root.glob("*.log")):
        tail = path.read_text(errors="replace").splitlines()[-lines:]
        print(f"----- {path.name} (last {len(tail)} lines) -----", *tail, sep="\n")


@pytest.fixture()
async def harness(pipeline: Pipeline) -> AsyncIterator[Harness]:
    """Produce to / follow the pipeline's topics."""
    async with Harness(pipeline.bootstrap, pipeline.settings) as h:
        yield h
