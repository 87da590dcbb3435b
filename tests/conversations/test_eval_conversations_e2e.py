"""`clawdesk eval conversations` end to end: the CI scenarios and a wrong expectation,
through a real worker on the real broker, Postgres and Redis."""

from __future__ import annotations

import json
import subprocess
import sys
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest

from clawdesk.sandbox import Sandbox
from tests.integration.conftest import Pipeline, pipeline

__all__ = ["pipeline"]
pytestmark = pytest.mark.integration
ROOT = Path(__file__).parents[2]
CI_SET = ROOT / "clawdesk" / "data" / "conversations" / "demo_ci.yaml"
WRONG = Path(__file__).with_name("wrong_expectation.yaml")


def test_the_command_reports_figures_and_a_wrong_expectation_with_the_reply(
    pipeline: Pipeline, tmp_path: Path
) -> None:
    # The sandbox providers, as the command's private system has them: the refund runs.
    sandbox = Sandbox().start()
    pipeline.extra_env.update(sandbox.env())
    try:
        _play_the_ci_set(pipeline, tmp_path)
    finally:
        sandbox.stop()


def _play_the_ci_set(pipeline: Pipeline, tmp_path: Path) -> None:
    pipeline.start_worker()
    out, junit = tmp_path / "out.json", tmp_path / "out.xml"
    argv = [sys.executable, "-m", "clawdesk.cli", "eval", "conversations", str(CI_SET), str(WRONG)]
    argv += ["--json", str(out), "--junit", str(junit)]
    # The pipeline's environment names its broker: the command uses it, starts nothing.
    done = subprocess.run(
        argv, env=pipeline.env("eval"), capture_output=True, text=True, timeout=240
    )
    assert done.returncode == 0, done.stderr[-3000:]
    assert "scenario runs passed" in done.stdout and "pass^1" in done.stdout
    assert "FAIL wrong-on-purpose" in done.stdout

    figures = json.loads(out.read_text())
    assert figures["overall"]["scenarios"] == 10
    # Every CI scenario passes: a regression in what customers get fails the build.
    failed = {f["scenario"] for f in figures["failures"]}
    assert failed == {"wrong-on-purpose"}, done.stdout[-4000:]
    assert set(figures["by_language"]) == {"en", "zh"}
    [wrong] = [f for f in figures["failures"] if f["scenario"] == "wrong-on-purpose"]
    [turn] = wrong["turns"]
    assert turn["reply"] and turn["say"] == "hello"
    checks = {f["check"]: f for f in turn["failures"]}
    assert checks["intent"]["expected"] == "refund_request"
    assert checks["intent"]["actual"] == turn["intent"] != "refund_request"
    assert "contains" in checks

    cases = ET.parse(junit).getroot().findall("testcase")
    assert len(cases) == 10
    assert next(c for c in cases if c.get("name") == "wrong-on-purpose").find("failure") is not None
