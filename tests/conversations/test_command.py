"""The command's own checks, before any pipeline is involved."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path


def test_a_malformed_file_exits_2_with_file_line_and_field(tmp_path: Path) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text("tenant: demo\nscenarios:\n  - name: x\n    language: en\n    turnz: []\n")
    argv = [sys.executable, "-m", "clawdesk.cli", "eval", "conversations", str(bad)]
    done = subprocess.run(argv, capture_output=True, text=True, timeout=60)
    assert done.returncode == 2
    assert f"{bad}:5: scenarios[0].turnz: unknown field" in done.stderr
    assert f"{bad}:3: scenarios[0].turns: missing field" in done.stderr
