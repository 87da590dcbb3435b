"""The lag exporter: every stage group's members and lag, read from the broker, as
Prometheus gauges. Any process can run it (`CLAWDESK_LAG_EXPORTER=true` on a worker or
the gateway, or `clawdesk exporter` alone); run one per pipeline, or the series repeat.
"""

from __future__ import annotations

import asyncio
import logging

from clawdesk.ops.groups import GroupReader, GroupView
from clawdesk.ops.metrics import (
    GROUP_COMMITTED,
    GROUP_LAG,
    GROUP_MEMBERS,
    LAG_EXPORT_ERRORS,
    TOPIC_HIGH_WATERMARK,
)
from clawdesk.settings import AppSettings

log = logging.getLogger(__name__)


def publish(views: list[GroupView]) -> None:
    """Set the gauges from one observation."""
    for view in views:
        GROUP_MEMBERS.labels(view.stage, view.group).set(len(view.members))
        for p in view.partitions:
            labels = (view.stage, view.group, p.topic, str(p.partition))
            GROUP_LAG.labels(*labels).set(p.lag)
            GROUP_COMMITTED.labels(*labels).set(p.committed or 0)
            TOPIC_HIGH_WATERMARK.labels(p.topic, str(p.partition)).set(p.high_watermark)


async def export_forever(bootstrap_servers: str, settings: AppSettings) -> None:
    """Observe the groups every `lag_export_interval_s` and publish; never raises (but
    for cancellation): a broker that is away is retried on the next tick."""
    while True:
        try:
            async with GroupReader(bootstrap_servers, settings) as reader:
                while True:
                    publish(await reader.observe())
                    await asyncio.sleep(settings.lag_export_interval_s)
        except asyncio.CancelledError:
            raise
        except Exception as err:
            LAG_EXPORT_ERRORS.labels(type(err).__name__).inc()
            log.warning("lag export failed; retrying", extra={"error": repr(err)})
            await asyncio.sleep(settings.lag_export_interval_s)
