"""The soak's fault schedule, run in the thread that ticks the supervisor.

One fault at a time, in the order given, cycling: each starts `every_s` seconds after
the previous one ended, so every reply delay can be put down to one fault. A kill is a
moment (its window starts and ends at the kill); an outage ends when the part runs again.
"""

from __future__ import annotations

import logging
import random
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field

from clawdesk.runtime.supervisor import Supervisor
from clawdesk.soak.providers import FakeProviders

log = logging.getLogger(__name__)

FAULTS = (
    "worker",
    "broker",
    "postgres",
    "redis",
    "provider-429",
    "provider-5xx",
    "provider-timeout",
    "llm",
    "gateway",
)
TICK_S = 0.5


@dataclass
class Durations:
    """How long each outage lasts (seconds)."""

    postgres: float = 60.0
    redis: float = 30.0
    provider: float = 20.0
    llm: float = 20.0


@dataclass
class FaultWindow:
    """One injected fault: when it started and ended (epoch seconds)."""

    name: str
    started: float
    ended: float | None = None
    detail: str = ""


@dataclass
class FaultRunner:
    """Ticks the supervisor every 0.5 s and, once `arm`ed, injects the faults."""

    supervisor: Supervisor
    providers: FakeProviders
    faults: list[str]
    every_s: float
    durations: Durations = field(default_factory=Durations)
    seed: int = 0
    on_event: Callable[[str], None] = lambda _: None
    windows: list[FaultWindow] = field(default_factory=list)
    _next_at: float | None = None  # monotonic; None: not armed
    _active: tuple[FaultWindow, Callable[[], bool]] | None = None
    _stop: threading.Event = field(default_factory=threading.Event)
    _disarmed: threading.Event = field(default_factory=threading.Event)
    _thread: threading.Thread | None = None
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def start(self) -> FaultRunner:
        """Start the thread (ticking only, until `arm`)."""
        self._rng = random.Random(self.seed)
        self._order = list(self.faults)
        self._thread = threading.Thread(target=self._run, name="soak-faults", daemon=True)
        self._thread.start()
        return self

    def arm(self) -> None:
        """Inject the first fault `every_s` seconds from now."""
        with self._lock:
            self._next_at = time.monotonic() + self.every_s

    def disarm(self) -> None:
        """Inject no new fault (one in progress runs to its end)."""
        with self._lock:
            self._next_at = None

    @property
    def active(self) -> str | None:
        """The fault in progress, if any."""
        active = self._active
        return active[0].name if active else None

    def stop(self) -> None:
        """Stop the thread (the supervisor is left to its owner)."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=30)

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                self.supervisor.tick()
                self._step()
            except Exception:  # a failed injection must not stop the supervisor's ticks
                log.exception("soak fault step failed")
            self._stop.wait(TICK_S)

    def _step(self) -> None:
        if self._active is not None:
            window, over = self._active
            if over():
                if window.ended is None:
                    window.ended = time.time()
                self._active = None
                self.on_event(f"{window.name} over ({window.ended - window.started:.0f} s)")
                with self._lock:
                    if self._next_at is not None:
                        self._next_at = time.monotonic() + self.every_s
            return
        with self._lock:
            due = self._next_at is not None and time.monotonic() >= self._next_at
        if due and self._order:
            name = self._order.pop(0)
            self._order.append(name)  # cycle
            self._inject(name)

    def _inject(self, name: str) -> None:
        sup, d = self.supervisor, self.durations
        now = time.time()
        window = FaultWindow(name, now)
        over: Callable[[], bool] = lambda: True  # noqa: E731 - a kill is a moment
        if name == "worker":
            workers = [n for n in sup.names() if n.startswith("worker-")]
            victim = self._rng.choice(workers)
            window.detail = victim
            sup.child(victim).kill()
        elif name in ("broker", "gateway"):
            sup.child(name).kill()
        elif name in ("postgres", "redis"):
            seconds = d.postgres if name == "postgres" else d.redis
            window.detail = f"{seconds:.0f} s"
            sup.hold(name, seconds)
            over = lambda: sup.status()[name]  # noqa: E731 - once it runs again
        elif name.startswith("provider-"):
            self.providers.fail(name.removeprefix("provider-"), d.provider)
            window.detail = f"{d.provider:.0f} s"
            over = lambda: self.providers.switch.current() is None  # noqa: E731
        elif name == "llm":
            self.providers.fail_llm(d.llm)
            window.detail = f"{d.llm:.0f} s"
            over = lambda: self.providers.llm_switch.current() is None  # noqa: E731
        else:
            raise ValueError(f"unknown fault {name!r}")
        if name in ("worker", "broker", "gateway"):
            window.ended = now
        self.windows.append(window)
        self.on_event(f"fault: {name} {window.detail}".rstrip())
        self._active = (window, over)
