"""What every fake provider shares: a FastAPI app served by uvicorn on a real loopback
port, a log of the calls it received, and switches that make the next N calls fail.
"""

from __future__ import annotations

import socket
import threading
import time
from collections import deque
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

import uvicorn
from fastapi import FastAPI, Request, Response
from fastapi.responses import JSONResponse


@dataclass(frozen=True)
class Call:
    """One request as the fake received it."""

    method: str
    path: str
    query: str
    headers: dict[str, str]
    at: float  # time.monotonic() on arrival


@dataclass
class Fault:
    status: int
    retry_after: str | None = None


class FakeProvider:
    """Base of the fakes. Subclasses add routes to `self.app` and implement `error_body`."""

    name = "fake"

    def __init__(self) -> None:
        self.app = FastAPI(title=f"fake {self.name}")
        self.calls: list[Call] = []
        self._faults: deque[Fault] = deque()
        self._lock = threading.Lock()
        self.base_url = ""
        self.app.middleware("http")(self._intercept)

    # -- switches used by tests -------------------------------------------------------
    def fail_next(self, n: int = 1, status: int = 503, retry_after: float | None = None) -> None:
        """Answer the next `n` requests with `status` (and `Retry-After`, if given)."""
        after = None if retry_after is None else f"{retry_after:g}"
        with self._lock:
            self._faults.extend(Fault(status, after) for _ in range(n))

    def reset(self) -> None:
        """Forget calls and pending faults, and restore the seed data."""
        with self._lock:
            self._faults.clear()
            self.calls.clear()
        self.reset_data()

    def reset_data(self) -> None:
        """Restore the provider's data (override)."""

    def calls_to(self, method: str, path_suffix: str) -> list[Call]:
        return [c for c in self.calls if c.method == method and c.path.endswith(path_suffix)]

    # -- provider shapes (override) ---------------------------------------------------
    def error_body(self, status: int, message: str) -> Any:
        return {"error": message}

    def error(self, status: int, message: str, headers: dict[str, str] | None = None) -> Response:
        return JSONResponse(self.error_body(status, message), status, headers=headers)

    # -- plumbing ---------------------------------------------------------------------
    async def _intercept(
        self, request: Request, call_next: Callable[[Request], Awaitable[Response]]
    ) -> Response:
        with self._lock:
            self.calls.append(
                Call(
                    request.method,
                    request.url.path,
                    request.url.query,
                    {k.lower(): v for k, v in request.headers.items()},
                    time.monotonic(),
                )
            )
            fault = self._faults.popleft() if self._faults else None
        if fault is None:
            return await call_next(request)
        headers = {"Retry-After": fault.retry_after} if fault.retry_after else None
        message = "Too Many Requests" if fault.status == 429 else "Internal Server Error"
        return self.error(fault.status, message, headers)


@dataclass
class Served:
    """A fake listening on 127.0.0.1:<free port> in a background thread."""

    fake: FakeProvider
    server: uvicorn.Server = field(init=False)
    thread: threading.Thread = field(init=False)

    def start(self) -> Served:
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind(("127.0.0.1", 0))  # the kernel picks a free port; no race
        port = sock.getsockname()[1]
        config = uvicorn.Config(
            self.fake.app, log_level="warning", lifespan="off", access_log=False
        )
        self.server = uvicorn.Server(config)
        self.thread = threading.Thread(
            target=self.server.run, kwargs={"sockets": [sock]}, daemon=True
        )
        self.thread.start()
        deadline = time.monotonic() + 10
        while not self.server.started:
            if time.monotonic() > deadline or not self.thread.is_alive():
                raise RuntimeError(f"fake {self.fake.name} did not start")
            time.sleep(0.01)
        self.fake.base_url = f"http://127.0.0.1:{port}"
        return self

    def stop(self) -> None:
        self.server.should_exit = True
        self.thread.join(timeout=10)
