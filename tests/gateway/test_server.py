"""serve(): the entry point the CLI awaits."""

from __future__ import annotations

import socket

import pytest

from clawdesk.gateway.server import serve
from clawdesk.settings import AppSettings


def closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


async def test_serve_raises_instead_of_exiting_when_the_broker_is_unreachable() -> None:
    settings = AppSettings(  # type: ignore[call-arg]
        _env_file=None, gateway_host="127.0.0.1", gateway_port=closed_port()
    )

    # uvicorn would sys.exit(3); the CLI needs an exception it can report.
    with pytest.raises(RuntimeError, match="failed to start"):
        await serve(settings, f"127.0.0.1:{closed_port()}", "postgresql://unused/none")
