"""Close the worker's services when it stops: every worker runs this module."""

from __future__ import annotations

import logging

from clawdesk import services
from clawdesk.app import app

log = logging.getLogger(__name__)


@app.on_before_shutdown.connect  # type: ignore[arg-type]
async def close_services(sender: object, **_: object) -> None:
    """Close the provider clients of the installed services (none before they start)."""
    try:
        svc = services.current()
    except RuntimeError:
        return  # stopped before the services were built: nothing was opened
    await svc.aclose()
