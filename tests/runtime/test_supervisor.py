"""The supervisor restarts what died, with backoff, and leaves the others alone."""

from __future__ import annotations

import sys
import time
from collections.abc import Iterator

import pytest

from clawdesk.runtime.supervisor import ProcessChild, Supervisor


def sleeper(name: str) -> ProcessChild:
    return ProcessChild(name, lambda: [sys.executable, "-c", "import time; time.sleep(600)"], dict)


def until(check: object, supervisor: Supervisor, timeout_s: float = 10.0) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        supervisor.tick()
        if check():  # type: ignore[operator]
            return
        time.sleep(0.05)
    raise AssertionError("timed out")


@pytest.fixture
def supervised() -> Iterator[tuple[Supervisor, list[str]]]:
    events: list[str] = []
    supervisor = Supervisor(on_event=events.append)
    supervisor.add(sleeper("worker-1"))
    supervisor.add(sleeper("gateway"))
    yield supervisor, events
    supervisor.stop()


def test_a_killed_child_is_restarted_and_the_others_keep_running(
    supervised: tuple[Supervisor, list[str]],
) -> None:
    supervisor, events = supervised
    worker, gateway = supervisor.child("worker-1"), supervisor.child("gateway")
    assert isinstance(worker, ProcessChild) and isinstance(gateway, ProcessChild)
    first_pid, gateway_pid = worker.pid, gateway.pid

    worker.kill()
    until(lambda: worker.alive(), supervisor)

    assert worker.pid != first_pid
    assert gateway.pid == gateway_pid and gateway.alive()
    assert supervisor.restarts("worker-1") == 1
    assert events == ["worker-1 exited; restarting in 0.5 s", "worker-1 restarted"]


def test_quick_crashes_back_off(supervised: tuple[Supervisor, list[str]]) -> None:
    supervisor, events = supervised
    worker = supervisor.child("worker-1")

    for _ in range(2):
        worker.kill()
        until(lambda: worker.alive(), supervisor)

    assert events[2] == "worker-1 exited; restarting in 1.0 s"


def test_a_held_child_stays_down_until_its_outage_ends(
    supervised: tuple[Supervisor, list[str]],
) -> None:
    supervisor, events = supervised
    worker = supervisor.child("worker-1")

    supervisor.hold("worker-1", 1.0)
    supervisor.tick()
    assert not worker.alive()
    started = time.monotonic()
    until(lambda: worker.alive(), supervisor)

    assert time.monotonic() - started > 0.5
    assert supervisor.status() == {"worker-1": True, "gateway": True}
    assert "worker-1 stopped for 1 s" in events
