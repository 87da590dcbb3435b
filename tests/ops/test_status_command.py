"""`clawdesk status` against the real broker: a pipeline whose stages have no workers yet
shows every stage's group empty and the waiting records as lag; bad stage names are
refused before anything starts."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import uuid

from typer.testing import CliRunner

from agents import STAGE_NAMES
from clawdesk.bench.harness import Harness
from clawdesk.cli import cli
from clawdesk.runtime.supervisor import declare_topics
from clawdesk.settings import AppSettings
from topics import inbound_spec


def run_cli(*args: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "clawdesk.cli", *args],
        env={**os.environ, **env},
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


async def test_status_shows_empty_groups_and_the_records_waiting(broker: str) -> None:
    prefix = f"s{uuid.uuid4().hex[:8]}"
    settings = AppSettings(_env_file=None, app_id=prefix, topic_prefix=prefix)  # type: ignore[call-arg]
    await declare_topics(broker, {inbound_spec.name(settings): settings.topic_partitions})
    async with Harness(broker, settings) as harness:
        for i in range(3):
            await harness.ask(f"question {i}", f"conv-{i}")
    env = {
        "KAFKA_BOOTSTRAP_SERVERS": broker,
        "CLAWDESK_APP_ID": prefix,
        "CLAWDESK_TOPIC_PREFIX": prefix,
    }
    result = run_cli("status", "--json", "--interval", "0.2", env=env)
    assert result.returncode == 0, result.stderr
    rows = {row["stage"]: row for row in json.loads(result.stdout)}
    assert list(rows) == list(STAGE_NAMES)
    assert rows["ingest"]["group"] == f"{prefix}-ingest"
    assert rows["ingest"]["lag"] == 3
    assert all(row["members"] == [] for row in rows.values())


def test_an_unknown_stage_is_refused_before_anything_starts() -> None:
    result = CliRunner().invoke(cli, ["worker", "--stages", "nlu,nlp"])
    assert result.exit_code == 2
    assert "unknown stage 'nlp'" in result.output
