"""Move the dead letters a worker spooled while Postgres was down into Postgres.

`guard.dead_letter` appends a letter to the worker's local spool when Postgres does not
take it; this timer inserts the spooled letters once Postgres answers again (each once,
by its letter id) and empties the spool. It also runs on the first tick after a restart,
so a letter spooled before a crash is not left behind.
"""

from __future__ import annotations

import logging

from clawdesk.app import app
from clawdesk.services import current
from clawdesk.settings import app_settings
from clawdesk.storage import deadletters

log = logging.getLogger(__name__)


async def flush_spool() -> int:
    """One tick: the spooled letters stored now. Errors are logged, never raised: a
    timer that raised would stop flushing for good."""
    try:
        services = current()
    except RuntimeError:
        return 0  # services are still starting
    try:
        return await deadletters.flush(services.pool, deadletters.spool_of(services.settings))
    except Exception:
        log.warning("spooled dead letters not stored yet; trying again", exc_info=True)
        return 0


@app.timer(interval=app_settings().dead_letter_flush_interval_s)
async def flush_dead_letters() -> None:
    """Store the spooled dead letters in Postgres, every few seconds."""
    await flush_spool()
