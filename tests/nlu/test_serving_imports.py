"""The serving path does not load the training bench."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

# Run in a fresh interpreter: this test process has long imported training already.
_PROBE = """
import json, sys
import {module}
print(json.dumps(sorted(m for m in sys.modules if m.startswith("clawdesk.nlu"))))
"""


def _loaded_after_import(module: str) -> list[str]:
    out = subprocess.run(
        [sys.executable, "-c", _PROBE.format(module=module)],
        check=True,
        capture_output=True,
        text=True,
        env={**os.environ, "HF_HUB_OFFLINE": "1"},
    )
    loaded: list[str] = json.loads(out.stdout.strip().splitlines()[-1])
    return loaded


@pytest.mark.parametrize(
    "module",
    [
        "clawdesk.nlu.tenant_models",
        "clawdesk.nlu.model",
        "clawdesk.nlu.versions",
        "clawdesk.nlu.resolve",
        "clawdesk.nlu",
    ],
)
def test_serving_modules_do_not_import_training(module: str) -> None:
    loaded = _loaded_after_import(module)
    assert module in loaded  # the probe imported what it says
    assert not [m for m in loaded if m.startswith("clawdesk.nlu.training")]


def test_the_probe_sees_training_when_it_is_imported() -> None:
    # The check above can fail: importing the trainer does load the training package.
    assert "clawdesk.nlu.training.fit" in _loaded_after_import("clawdesk.nlu.training.fit")
