"""A replay runs the real stage code in shadow: an unchanged candidate reproduces every
production decision (even killed midway and resumed), a different threshold changes
exactly the messages it should, and nothing leaves the shadow run (channels, side
effects, tickets, tables, cache)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import psycopg
import pytest
from typer.testing import CliRunner

from clawdesk.replay import driver, runs
from clawdesk.replay.candidate import parse
from clawdesk.replay.diff import run_report
from clawdesk.replay.source import TopicSource
from tests.replay.conftest import Day
from topics import inbound_spec

# A first worker start trains the demo model and indexes the KB: minutes on a busy machine.
pytestmark = [pytest.mark.integration, pytest.mark.timeout(1200)]


def test_a_killed_unchanged_replay_resumes_to_production_and_touches_nothing(day: Day) -> None:
    counts, cache, effects = day.production_counts(), day.production_cache(), day.effects()
    assert effects["stripe_refunds"] == 1 and effects["zendesk_tickets"] == 1
    assert counts["decisions"] == len(day.messages)
    assert cache, "production cached something the shadow run could overwrite"
    # `clawdesk replay start` (production's own version), killed with -9 midway.
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
        sys.executable, "-m", "clawdesk.cli", "replay", "start", "--name", "same",
        "--since", day.selection.since.isoformat(), "--until", day.selection.until.isoformat(),
    ]  # fmt: skip
    started = subprocess.Popen(argv, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        deadline = time.monotonic() + 600
        while time.monotonic() < deadline and started.poll() is None:
            if _decided(day.database_url, "replay_same") >= 3:
                break
            time.sleep(0.2)
        assert started.poll() is None, started.stderr.read() if started.stderr else ""
    finally:
        started.kill()  # kill -9 of the driver: its worker is left running
        started.wait()
    run = runs.get(day.database_url, "same")
    assert run.status == "running" and run.total == len(day.messages)
    assert _decided(day.database_url, "replay_same") < len(day.messages), "killed midway"

    resumed = driver.resume(day.replay(), "same")

    assert resumed.status == "finished", resumed.error
    assert resumed.attempt == 2
    report = run_report(day.database_url, "same")
    assert report.messages == len(day.messages)
    assert [(d.text, d.changed) for d in report.changed] == []
    assert report.reply_not_comparable == 1, "the refund's reply: it would run"
    # Nothing left the shadow run.
    assert day.effects() == effects, "no send, refund or ticket"
    assert day.production_counts() == counts, "no production row written"
    day.assert_cache_untouched(cache)
    with psycopg.connect(day.database_url) as conn:
        held = conn.execute(
            "SELECT skill, arguments FROM replay_same.skill_audit WHERE status = 'would_run'"
        ).fetchall()
        shadow = conn.execute(
            "SELECT skill, skill_args FROM replay_same.decisions WHERE would_run"
        ).fetchall()
    refund = ("refund", {"order": "1002", "email": "mike.turner@example.com"})
    assert held == [refund] and shadow == [refund]


def test_a_higher_threshold_changes_exactly_the_messages_below_it(day: Day) -> None:
    # The plain model (no intent resolution: its intent at the floor, else oos) at the
    # production floor, then at a higher one: the messages whose confidence lies between
    # become oos, no others.
    plain = parse("nlu_resolution=false")
    base = driver.start(day.replay(), "plain", day.selection, plain)
    assert base.status == "finished", base.error
    with psycopg.connect(day.database_url) as conn:
        rows = conn.execute(
            f"SELECT message_id, confidence FROM {base.schema_name}.decisions"
            " WHERE intent IS NOT NULL AND intent <> 'oos' ORDER BY confidence"
        ).fetchall()
    confidences = sorted({c for _, c in rows})
    assert len(confidences) >= 2, rows
    threshold = (confidences[len(confidences) // 2 - 1] + confidences[len(confidences) // 2]) / 2
    expected = {mid for mid, c in rows if c < threshold}

    strict = parse(f"nlu_resolution=false,nlu_min_confidence={threshold:.6f}")
    run = driver.start(day.replay(), "strict", day.selection, strict)

    assert run.status == "finished", run.error
    report = run_report(day.database_url, "strict", against="plain")
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
    assert {"same", "plain", "strict"} <= listed


def _decided(url: str, schema: str) -> int:
    with psycopg.connect(url) as conn:
        try:
            row = conn.execute(f"SELECT count(*) FROM {schema}.decisions").fetchone()
        except psycopg.errors.UndefinedTable:
            return 0
    return int(row[0]) if row else 0


def test_runs_are_shown_diffed_and_deleted_from_the_command_line(
    day: Day, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from clawdesk.cli import cli
    from clawdesk.settings import app_settings, connection_settings

    monkeypatch.setenv("DATABASE_URL", day.database_url)
    monkeypatch.setenv("CLAWDESK_DATA_DIR", str(day.settings.data_dir))
    connection_settings.cache_clear()
    app_settings.cache_clear()
    runner = CliRunner()
    try:
        shown = json.loads(runner.invoke(cli, ["replay", "status", "same", "--json"]).stdout)
        assert (shown["status"], shown["decided"]) == ("finished", len(day.messages))
        listed = json.loads(runner.invoke(cli, ["replay", "list", "--json"]).stdout)
        assert {"same", "strict"} <= {r["name"] for r in listed}
        page = tmp_path / "strict.html"
        diffed = runner.invoke(cli, ["replay", "diff", "strict", "--json", "--html", str(page)])
        assert diffed.exit_code == 0, diffed.output
        assert json.loads(diffed.stdout)["changed"] > 0
        assert "against production" in page.read_text()
        deleted = runner.invoke(cli, ["replay", "delete", "strict"])
        assert deleted.exit_code == 0, deleted.output
        gone = runner.invoke(cli, ["replay", "status", "strict"])
        assert gone.exit_code == 2 and "no replay run named 'strict'" in gone.output
    finally:
        connection_settings.cache_clear()
        app_settings.cache_clear()
    with psycopg.connect(day.database_url) as conn:
        schemas = conn.execute(
            "SELECT count(*) FROM information_schema.schemata WHERE schema_name = 'replay_strict'"
        ).fetchone()
    assert schemas == (0,)
    assert not (day.settings.data_dir / "replay" / "strict").exists()


def test_a_replay_read_from_the_inbound_topic_matches_production(day: Day) -> None:
    # The broker still holds the day's inbound events: replayed from there instead of
    # Postgres, production's own version decides as production did.
    source = TopicSource(day.bootstrap, inbound_spec.name(day.settings), day.selection)
    run = driver.start(day.replay(), "fromtopic", source, parse("production"))

    assert run.status == "finished", run.error
    assert run.total == len(day.messages)
    report = run_report(day.database_url, "fromtopic")
    assert report.messages == len(day.messages)
    assert [(d.text, d.changed) for d in report.changed] == []
