"""A replay runs the real stage code in shadow: an unchanged candidate reproduces every
production decision, a different threshold changes exactly the messages it should, and
nothing leaves the shadow run (channels, side effects, tickets, tables, cache)."""

from __future__ import annotations

import os
import subprocess
import sys
import time

import psycopg
import pytest

from clawdesk.replay import driver, runs
from clawdesk.replay.candidate import parse
from clawdesk.replay.diff import run_report
from tests.replay.conftest import Day

# A first worker start trains the demo model and indexes the KB: minutes on a busy machine.
pytestmark = [pytest.mark.integration, pytest.mark.timeout(1200)]


def test_unchanged_candidate_reproduces_production_and_touches_nothing(day: Day) -> None:
    counts, cache, effects = day.production_counts(), day.production_cache(), day.effects()
    assert effects["stripe_refunds"] == 1 and effects["zendesk_tickets"] == 1
    assert counts["decisions"] == len(day.messages)
    assert cache, "production cached something the shadow run could overwrite"

    run = driver.start(day.replay(), "same", day.selection, parse("production"))

    assert run.status == "finished", run.error
    assert run.total == len(day.messages)
    report = run_report(day.database_url, "same")
    assert report.messages == len(day.messages)
    assert [(d.text, d.changed) for d in report.changed] == []
    assert report.reply_not_comparable == 1, "the refund's reply: it would run"
    # Nothing left the shadow run.
    assert day.effects() == effects, "no send, refund or ticket"
    assert day.production_counts() == counts, "no production row written"
    assert day.production_cache() == cache, "no production cache entry changed"
    with psycopg.connect(day.database_url) as conn:
        held = conn.execute(
            "SELECT skill, arguments FROM replay_same.skill_audit WHERE status = 'would_run'"
        ).fetchall()
        shadow = conn.execute(
            "SELECT skill, skill_args, would_run FROM replay_same.decisions WHERE skill = 'refund'"
            " AND would_run"
        ).fetchall()
    assert held == [("refund", {"order": "1002", "email": "mike.turner@example.com"})]
    assert len(shadow) == 1


def test_a_higher_threshold_changes_exactly_the_messages_below_it(day: Day) -> None:
    with psycopg.connect(day.database_url) as conn:
        rows = conn.execute(
            "SELECT message_id, confidence FROM decisions WHERE intent IS NOT NULL"
            " AND intent <> 'oos' ORDER BY confidence"
        ).fetchall()
    confidences = sorted({c for _, c in rows})
    assert len(confidences) >= 2, rows
    # Between two production confidences: the messages below it become oos, no others.
    threshold = (confidences[len(confidences) // 2 - 1] + confidences[len(confidences) // 2]) / 2
    expected = {mid for mid, c in rows if c < threshold}

    run = driver.start(
        day.replay(), "strict", day.selection, parse(f"nlu_min_confidence={threshold:.6f}")
    )

    assert run.status == "finished", run.error
    report = run_report(day.database_url, "strict")
    assert {d.message_id for d in report.changed if "intent" in d.changed} == expected
    assert all(d.candidate["intent"] == "oos" for d in report.changed if "intent" in d.changed)
    # Anything else that changed follows a changed intent earlier in its conversation.
    order = {m.event_id: i for i, m in enumerate(day.messages)}
    conv_of = {m.event_id: m.conversation_id for m in day.messages}
    for d in report.changed:
        if d.message_id not in expected:
            assert any(
                conv_of[e] == d.conversation_id and order[e] < order[d.message_id] for e in expected
            ), d
    assert sum(n for (b, c), n in report.confusion.items() if b != c) == len(expected)
    listed = {r.name for r in runs.all_runs(day.database_url)}
    assert {"same", "strict"} <= listed


def test_a_replay_killed_midway_resumes_and_finishes_with_the_same_diff(day: Day) -> None:
    env = {
        **os.environ,
        "DATABASE_URL": day.database_url,
        "KAFKA_BOOTSTRAP_SERVERS": day.bootstrap,
        "REDIS_URL": day.redis_url,
        "CLAWDESK_DATA_DIR": str(day.settings.data_dir),
        "CLAWDESK_MODELS_DIR": str(day.settings.model_root),
        "CLAWDESK_APP_ID": day.settings.app_id,
    }
    argv = [
        sys.executable, "-m", "clawdesk.cli", "replay", "start", "--name", "killed",
        "--since", day.selection.since.isoformat(), "--until", day.selection.until.isoformat(),
    ]  # fmt: skip
    started = subprocess.Popen(argv, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        deadline = time.monotonic() + 300
        while time.monotonic() < deadline and started.poll() is None:
            if _decided(day.database_url, "replay_killed") >= 3:
                break
            time.sleep(0.2)
        assert started.poll() is None, started.stderr.read() if started.stderr else ""
    finally:
        started.kill()  # kill -9 of the driver: its worker is left running
        started.wait()
    run = runs.get(day.database_url, "killed")
    assert run.status == "running" and run.total == len(day.messages)
    assert _decided(day.database_url, "replay_killed") < len(day.messages), "killed midway"

    resumed = driver.resume(day.replay(), "killed")

    assert resumed.status == "finished", resumed.error
    assert resumed.attempt == 2
    report = run_report(day.database_url, "killed")
    assert report.messages == len(day.messages)
    assert [(d.text, d.changed) for d in report.changed] == []


def _decided(url: str, schema: str) -> int:
    with psycopg.connect(url) as conn:
        try:
            row = conn.execute(f"SELECT count(*) FROM {schema}.decisions").fetchone()
        except psycopg.errors.UndefinedTable:
            return 0
    return int(row[0]) if row else 0
