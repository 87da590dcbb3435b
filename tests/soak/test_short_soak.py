"""The short soak (CI): the real stack through a few faults loses and duplicates nothing."""

from __future__ import annotations

from pathlib import Path

import pytest
from rich.console import Console

from clawdesk.soak.command import SoakOptions, run_soak

pytestmark = pytest.mark.integration


@pytest.mark.timeout(420)
def test_short_soak_loses_and_duplicates_nothing(models_dir: Path) -> None:
    options = SoakOptions(
        conversations=8,
        messages=4,
        workers=2,
        faults=["worker", "broker", "postgres", "provider-5xx"],
        fault_every_s=10.0,
        postgres_outage_s=15.0,
        provider_outage_s=10.0,
        drain_timeout_s=240.0,  # generous: CI machines are slow and loaded
        minutes=4.0,
        models_dir=models_dir,  # shared with the integration tests: trained once
    )

    report = run_soak(options, Console(stderr=True, width=120))

    # The schedule cycles while the drive lasts: the first four are the ones asked for.
    assert [f.name for f in report.faults][:4] == ["worker", "broker", "postgres", "provider-5xx"]
    assert report.acknowledged == 32
    assert report.lost == 0, report.lost_messages
    assert report.duplicated == 0, report.duplicated_messages
    assert report.drive["drained"], "every acknowledged message settled"
