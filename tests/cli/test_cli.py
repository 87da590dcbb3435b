"""The command line: help, schema export, and clear errors."""

from __future__ import annotations

import json
import shutil

from typer.testing import CliRunner

from clawdesk.cli import cli

runner = CliRunner()


def test_help_lists_every_command():
    out = runner.invoke(cli, ["--help"]).output
    for command in ("up", "worker", "gateway", "migrate", "kb", "schemas", "eval", "bench"):
        assert command in out


def test_schemas_export_writes_json_schema_files(tmp_path):
    result = runner.invoke(cli, ["schemas", "export", str(tmp_path)])
    assert result.exit_code == 0, result.output
    files = sorted(p.name for p in tmp_path.iterdir())
    assert "inbound_message.v1.schema.json" in files
    assert "dead_letter.v1.schema.json" in files
    assert json.loads((tmp_path / "reply.v1.schema.json").read_text())["title"] == "Reply"


def test_kb_ingest_refuses_missing_paths(tmp_path):
    result = runner.invoke(cli, ["kb", "ingest", str(tmp_path / "nope")])
    assert result.exit_code == 2
    assert "no such file" in result.output


def test_nlu_train_refuses_an_unknown_packaged_encoder(tmp_path):
    intents = tmp_path / "intents.yaml"
    intents.write_text("intents:\n  greet: [hi, hello]\n  bye: [bye, see you]\n")
    result = runner.invoke(cli, ["nlu", "train", str(intents), "--encoder", "packaged:nope"])
    assert result.exit_code == 2
    assert "unknown packaged model" in result.output


def test_nlu_train_stores_versions_per_tenant(tmp_path, monkeypatch):
    from clawdesk.settings import app_settings

    intents = tmp_path / "intents.yaml"
    intents.write_text(
        "intents:\n  greet: [hi, hello, hey there, good morning]\n"
        "  refund: [i want a refund, money back please, refund my order, 我要退款]\n"
    )
    monkeypatch.setenv("CLAWDESK_MODELS_DIR", str(tmp_path / "models"))
    app_settings.cache_clear()
    try:
        for expected in ("v0001", "v0002"):
            result = runner.invoke(cli, ["nlu", "train", str(intents), "--tenant", "acme"])
            assert result.exit_code == 0, result.output
            assert expected in result.output
        listed = runner.invoke(cli, ["nlu", "versions", "--tenant", "acme"]).output.split()
        assert listed == ["v0001", "v0002"]
        # One Chinese example in eight: "auto" adds the multilingual encoder; off keeps it out
        assert "multilingual: multilingual-e5-small" in " ".join(result.output.split())
        off = runner.invoke(cli, ["nlu", "train", str(intents), "--multilingual", "off"])
        assert off.exit_code == 0, off.output
        assert "multilingual: none" in " ".join(off.output.split())
    finally:
        app_settings.cache_clear()


def test_nlu_train_refuses_bad_settings(tmp_path, monkeypatch):
    from clawdesk.settings import app_settings

    intents = tmp_path / "intents.yaml"
    intents.write_text("intents:\n  greet: [hi, hello]\n  bye: [bye, see you]\n")
    monkeypatch.setenv("CLAWDESK_MODELS_DIR", str(tmp_path / "models"))
    app_settings.cache_clear()
    try:
        for options, message in (
            (["--finetune", "--finetune-set", "temperature=cold"], "valid number"),
            (["--finetune-set", "lr=1e-4"], "needs --finetune"),
            # nothing is downloaded: a multilingual model must be on this machine
            (["--multilingual", "intfloat/multilingual-e5-base"], "a model directory"),
            (["--multilingual", "packaged:nope"], "unknown packaged model"),
        ):
            result = runner.invoke(cli, ["nlu", "train", str(intents), *options])
            assert result.exit_code == 2
            assert message in result.output
        assert not (tmp_path / "models").exists()  # nothing trained, nothing stored
    finally:
        app_settings.cache_clear()


def test_nlu_prune_removes_old_versions_but_not_the_pinned_one(tmp_path, monkeypatch):
    from clawdesk.nlu import versions as store
    from clawdesk.settings import app_settings

    class Saved:
        def save(self, directory):
            (directory / "weights.bin").write_bytes(b"x" * 2_000_000)

    for _ in range(4):
        store.save_model(tmp_path, "acme", Saved())
    monkeypatch.setenv("CLAWDESK_MODELS_DIR", str(tmp_path))
    monkeypatch.setenv("CLAWDESK_NLU_MODEL_VERSION", "v0001")
    app_settings.cache_clear()
    try:
        args = ["nlu", "prune", "--tenant", "acme", "--keep", "1"]
        dry = runner.invoke(cli, [*args, "--dry-run"])
        assert dry.exit_code == 0, dry.output
        assert "would remove v0002 (2.0 MB)" in dry.output
        assert store.list_versions(tmp_path, "acme") == ["v0001", "v0002", "v0003", "v0004"]
        done = runner.invoke(cli, args)
        assert done.exit_code == 0, done.output
        assert "removed 2 version(s) of 'acme', 4.0 MB; v0001 is pinned and kept" in done.output
        assert store.list_versions(tmp_path, "acme") == ["v0001", "v0004"]
        bad = runner.invoke(cli, ["nlu", "prune", "--tenant", "../etc"])
        assert bad.exit_code == 2 and "invalid tenant id" in bad.output
        assert runner.invoke(cli, ["nlu", "prune", "--keep", "0"]).exit_code == 2
    finally:
        app_settings.cache_clear()


def test_nlu_prune_reports_a_version_that_vanished_meanwhile(tmp_path, monkeypatch):
    from clawdesk.nlu import versions as store
    from clawdesk.settings import app_settings

    class Saved:
        def save(self, directory):
            (directory / "weights.bin").write_bytes(b"x")

    for _ in range(3):
        store.save_model(tmp_path, "acme", Saved())
    plan = store.prune_plan

    def plan_then_lose_one(*args, **kwargs):
        doomed = plan(*args, **kwargs)
        shutil.rmtree(tmp_path / "acme" / doomed[0])  # another prune got there first
        return doomed

    monkeypatch.setattr(store, "prune_plan", plan_then_lose_one)
    monkeypatch.setenv("CLAWDESK_MODELS_DIR", str(tmp_path))
    app_settings.cache_clear()
    try:
        result = runner.invoke(cli, ["nlu", "prune", "--tenant", "acme", "--keep", "1"])
        assert result.exit_code == 1
        assert "could not prune 'acme'" in result.output and "v0001" in result.output
        assert result.exception is None or isinstance(result.exception, SystemExit)
    finally:
        app_settings.cache_clear()
