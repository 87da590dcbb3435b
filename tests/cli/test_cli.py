"""The command line: help, schema export, and clear errors."""

from __future__ import annotations

import json

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
    finally:
        app_settings.cache_clear()


def test_nlu_train_refuses_bad_finetune_settings(tmp_path, monkeypatch):
    from clawdesk.settings import app_settings

    intents = tmp_path / "intents.yaml"
    intents.write_text("intents:\n  greet: [hi, hello]\n  bye: [bye, see you]\n")
    monkeypatch.setenv("CLAWDESK_MODELS_DIR", str(tmp_path / "models"))
    app_settings.cache_clear()
    try:
        for options, message in (
            (["--finetune", "--finetune-set", "temperature=cold"], "needs a number"),
            (["--finetune-set", "lr=1e-4"], "needs --finetune"),
        ):
            result = runner.invoke(cli, ["nlu", "train", str(intents), *options])
            assert result.exit_code == 2
            assert message in result.output
        assert not (tmp_path / "models").exists()  # nothing trained, nothing stored
    finally:
        app_settings.cache_clear()
