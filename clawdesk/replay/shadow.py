"""A shadow run's pipeline: the real stage code under its own app id and topics.

Every attempt of a run (the first, and each resume) gets its own app id
(`replay-<run>-<attempt>`: consumer group, table changelogs, cache namespace), topic
prefix (`shadow.<run>.<attempt>`), data folder and worker, so a resumed run starts its
unfinished conversations with fresh memory. The worker runs with `shadow_run` set
(only the deciding stages; side-effecting skills "would run") and its Postgres
`search_path` on the run's schema.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

from clawdesk.replay.runs import schema_of, shadow_url
from clawdesk.settings import AppSettings
from topics import ALL_TOPICS


@dataclass(frozen=True)
class Infra:
    """Where production's parts are (a replay reads Postgres, shares nothing else)."""

    bootstrap_servers: str
    database_url: str
    redis_url: str = ""


@dataclass(frozen=True)
class Attempt:
    """One attempt of a run: its names, its folder, its settings."""

    run: str
    number: int
    production: AppSettings

    @property
    def app_id(self) -> str:
        """The Faust app id (consumer group, changelogs, cache namespace)."""
        return f"replay-{self.run}-{self.number}"

    @property
    def topic_prefix(self) -> str:
        """Every topic of this attempt starts with it."""
        return f"shadow.{self.run}.{self.number}"

    @property
    def folder(self) -> Path:
        """The worker's data folder (tables, Qdrant, log)."""
        return (self.production.data_dir / "replay" / self.run / str(self.number)).resolve()

    @property
    def settings(self) -> AppSettings:
        """The attempt's settings as the harness and topic tools see them."""
        return self.production.model_copy(
            update={
                "app_id": self.app_id,
                "topic_prefix": self.topic_prefix,
                "shadow_run": self.run,
                "data_dir": self.folder,
            }
        )

    def env(self, infra: Infra, candidate_env: dict[str, str]) -> dict[str, str]:
        """The worker's environment: production's, pointed at the shadow's names and
        schema, with the candidate's overrides last."""
        return {
            **os.environ,
            "KAFKA_BOOTSTRAP_SERVERS": infra.bootstrap_servers,
            "DATABASE_URL": shadow_url(infra.database_url, schema_of(self.run)),
            "REDIS_URL": infra.redis_url,
            "CLAWDESK_APP_ID": self.app_id,
            "CLAWDESK_TOPIC_PREFIX": self.topic_prefix,
            "CLAWDESK_SHADOW_RUN": self.run,
            "CLAWDESK_DATA_DIR": str(self.folder),
            # Production's models unless the candidate names others.
            "CLAWDESK_MODELS_DIR": str(self.production.model_root.resolve()),
            "CLAWDESK_METRICS_PORT": "0",
            "CLAWDESK_WORKER_WEB_PORT": "0",
            **candidate_env,
        }

    def topics(self) -> dict[str, int]:
        """The attempt's topics and their partition counts."""
        settings = self.settings
        return {spec.name(settings): spec.partitions(settings) for spec in ALL_TOPICS}


def spawn_worker(attempt: Attempt, env: dict[str, str]) -> subprocess.Popen[bytes]:
    """Start the attempt's worker (its own session: a Ctrl-C of the driver is the
    driver's to pass on); its log is `<folder>/worker.log`."""
    attempt.folder.mkdir(parents=True, exist_ok=True)
    log = open(attempt.folder / "worker.log", "ab")
    argv = [sys.executable, "-m", "faust", "-A", "clawdesk.app", "worker", "-l", "info"]
    return subprocess.Popen(
        [*argv, "--without-web"],
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )


def is_shadow_worker(pid: int, run: str) -> bool:
    """Whether `pid` is still a worker of this run (a pid can be reused once it exits)."""
    try:
        environ = Path(f"/proc/{pid}/environ").read_bytes()
    except OSError:
        return False
    return f"CLAWDESK_SHADOW_RUN={run}".encode() in environ.split(b"\0")


def stop_pid(pid: int, timeout_s: float = 15.0) -> None:
    """SIGTERM the process we started, wait, then SIGKILL it."""
    try:
        os.kill(pid, signal.SIGTERM)
    except ProcessLookupError:
        return
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return
        _reap(pid)
        time.sleep(0.1)
    try:
        os.kill(pid, signal.SIGKILL)
    except ProcessLookupError:
        return
    _reap(pid)


def _reap(pid: int) -> None:
    try:
        os.waitpid(pid, os.WNOHANG)
    except ChildProcessError:
        pass  # not our child (an earlier driver started it): nothing to reap
