"""Run the gateway under uvicorn inside the caller's event loop."""

from __future__ import annotations

import asyncio

import uvicorn

from clawdesk.gateway.app import create_app
from clawdesk.gateway.limits import max_body_bytes
from clawdesk.ops.exporter import export_forever
from clawdesk.settings import AppSettings

# Bound on waiting for open requests and sockets when shutting down.
SHUTDOWN_GRACE_S = 5


async def serve(settings: AppSettings, bootstrap_servers: str, database_url: str) -> None:
    """Serve the gateway on `settings.gateway_host:gateway_port` until shut down.

    Stops on SIGINT/SIGTERM (uvicorn's handling) or when this coroutine is
    cancelled; either way the shutdown is graceful: sockets closed, producer
    flushed, pool closed. Raises RuntimeError when the app fails to start
    (broker or Postgres unreachable, port taken) instead of uvicorn's SystemExit.
    """
    app = create_app(
        settings,
        bootstrap_servers=bootstrap_servers,
        database_url=database_url,
        max_body_bytes=max_body_bytes(settings.max_message_bytes),
    )
    config = uvicorn.Config(
        app,
        host=settings.gateway_host,
        port=settings.gateway_port,
        # Logging is configured once by the process (JSON); uvicorn must not replace it.
        log_config=None,
        # "on", not "auto": with "auto" a failing startup is logged and serving goes on.
        lifespan="on",
        timeout_graceful_shutdown=SHUTDOWN_GRACE_S,
    )
    server = uvicorn.Server(config)
    serving = asyncio.create_task(_run(server), name="gateway-uvicorn")
    # The lag exporter role: its gauges are served on the gateway's /metrics.
    exporting = (
        asyncio.create_task(export_forever(bootstrap_servers, settings), name="lag-exporter")
        if settings.lag_exporter
        else None
    )
    try:
        await asyncio.shield(serving)
    except asyncio.CancelledError:
        # A cancelled uvicorn task skips the lifespan shutdown; ask it to exit instead.
        server.should_exit = True
        await serving
        raise
    finally:
        if exporting is not None:
            exporting.cancel()


async def _run(server: uvicorn.Server) -> None:
    try:
        await server.serve()
    except SystemExit as exit_:
        # uvicorn exits the process when startup fails (lifespan error, port taken).
        # Raised from a task, SystemExit would escape the caller's event loop.
        raise RuntimeError(
            f"gateway failed to start (uvicorn exit code {exit_.code}); see the log"
        ) from exit_
