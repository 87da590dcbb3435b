"""Fixes to faust-streaming 0.15.3 that clawdesk applies when it builds its app.

Each fix is a small, documented wrapper around one Faust method, applied once and
idempotently, so upgrading Faust means re-checking this one module.
"""

from __future__ import annotations

import functools
from collections.abc import Awaitable, Callable
from typing import Any

from faust.tables.manager import TableManager
from faust.tables.recovery import Recovery

_PATCHED = "_clawdesk_stops_flow_first"

RecoveryStep = Callable[..., Awaitable[None]]


def _stop_flow_first(step: RecoveryStep) -> RecoveryStep:
    """Run a recovery step that resumes the streams with the flow stopped beforehand.

    Faust's last recovery steps (`on_recovery_completed`, `_resume_streams`) resume the
    stream partitions and seek them to their committed offsets while the flow is still
    running from the changelog phase, and only then call `flow_control.resume()` — which
    *clears every stream queue*. Records the fetcher delivered in between were dropped
    from the queues although their offsets counted as read: after a crash, a message
    that arrived during the restarted worker's recovery was silently never processed,
    and a later commit on that partition lost it for good.

    With the flow stopped first, the fetcher delivers nothing (Faust's `getmany` seeks
    back to the committed offsets instead) until the step's own final resume, so every
    record is fetched again after the queues were cleared.
    """

    @functools.wraps(step)
    async def wrapper(self: Recovery, *args: Any, **kwargs: Any) -> None:
        self.app.flow_control.suspend()
        self.app.consumer.stop_flow()
        await step(self, *args, **kwargs)

    setattr(wrapper, _PATCHED, True)
    return wrapper


def apply() -> None:
    """Apply every fix (safe to call more than once)."""
    for name in ("on_recovery_completed", "_resume_streams"):
        step = getattr(Recovery, name)
        if not getattr(step, _PATCHED, False):
            setattr(Recovery, name, _stop_flow_first(step))
    TableManager.on_start = _start_tables_without_grace  # type: ignore[method-assign]


async def _start_tables_without_grace(self: TableManager) -> None:
    """`TableManager.on_start` without its fixed one-second sleep.

    Faust sleeps 1 s so that tables an agent defines late can still register before the
    changelogs are subscribed. clawdesk defines every table at import time, so the sleep
    only delayed the group join — and with it the first answer after every start.
    """
    await self.sleep(0)
    if not self.should_stop:
        await self._update_channels()
        await self.recovery.start()
