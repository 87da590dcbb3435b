"""The Faust recovery fix: the flow stops before stream partitions resume."""

from __future__ import annotations

from types import SimpleNamespace
from typing import Any

from faust.tables.recovery import Recovery

from clawdesk.runtime import faust_fixes


class _Recorder:
    """Records every method called on it as `<name>.<method>` into a shared list."""

    def __init__(self, name: str, calls: list[str]) -> None:
        self.name, self.calls = name, calls

    def __getattr__(self, method: str) -> Any:
        return lambda *a, **k: self.calls.append(f"{self.name}.{method}")


async def test_flow_is_stopped_before_the_step_runs() -> None:
    calls: list[str] = []
    flow, consumer = _Recorder("flow_control", calls), _Recorder("consumer", calls)

    async def step(self: Any, generation_id: int = 0) -> None:
        calls.append(f"step({generation_id})")

    wrapped = faust_fixes._stop_flow_first(step)
    fake = SimpleNamespace(app=SimpleNamespace(flow_control=flow, consumer=consumer))
    await wrapped(fake, generation_id=3)
    assert calls == ["flow_control.suspend", "consumer.stop_flow", "step(3)"]


def test_apply_wraps_both_recovery_steps_once() -> None:
    faust_fixes.apply()
    first = (Recovery.on_recovery_completed, Recovery._resume_streams)
    faust_fixes.apply()
    assert (Recovery.on_recovery_completed, Recovery._resume_streams) == first
    assert all(getattr(step, faust_fixes._PATCHED) for step in first)


async def test_table_manager_starts_without_the_fixed_sleep() -> None:
    from faust.tables.manager import TableManager

    faust_fixes.apply()
    calls: list[str] = []
    slept: list[float] = []

    async def sleep(seconds: float) -> None:
        slept.append(seconds)

    async def update_channels() -> None:
        calls.append("update_channels")

    async def start_recovery() -> None:
        calls.append("recovery.start")

    fake = SimpleNamespace(
        sleep=sleep,
        should_stop=False,
        _update_channels=update_channels,
        recovery=SimpleNamespace(start=start_recovery),
    )
    await TableManager.on_start(fake)  # type: ignore[arg-type]
    assert slept == [0]
    assert calls == ["update_channels", "recovery.start"]
