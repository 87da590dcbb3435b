"""`clawdesk status`: each stage's group, members, assignments, lag and rates, from two
observations of the broker `interval_s` apart."""

from __future__ import annotations

import asyncio
from typing import Any

from rich.table import Table

from clawdesk.ops.groups import GroupReader, GroupView
from clawdesk.settings import AppSettings


def rates(before: GroupView, after: GroupView, seconds: float) -> tuple[float, float]:
    """Records per second arriving on the stage's inputs, and finished (committed)."""
    if seconds <= 0:
        return 0.0, 0.0
    old = {(p.topic, p.partition): p for p in before.partitions}
    arrived = done = 0
    for p in after.partitions:
        prev = old.get((p.topic, p.partition))
        if prev is None:
            continue
        arrived += p.high_watermark - prev.high_watermark
        done += (p.committed or 0) - (prev.committed or 0)
    return max(arrived, 0) / seconds, max(done, 0) / seconds


async def observe(
    bootstrap_servers: str, settings: AppSettings, interval_s: float = 2.0
) -> list[dict[str, Any]]:
    """Every stage's group with its rates over `interval_s`, JSON-ready."""
    async with GroupReader(bootstrap_servers, settings) as reader:
        first = await reader.observe()
        await asyncio.sleep(interval_s)
        second = await reader.observe()
    rows = []
    for before, after in zip(first, second, strict=True):
        arriving, finishing = rates(before, after, after.observed_at - before.observed_at)
        rows.append(
            {
                **after.as_dict(),
                "in_per_s": round(arriving, 2),
                "done_per_s": round(finishing, 2),
            }
        )
    return rows


def table(rows: list[dict[str, Any]]) -> Table:
    """The rows as a terminal table: one line per member, the group's figures once."""
    out = Table(title="clawdesk stage groups")
    for column in ("stage", "group", "state", "member", "partitions", "lag", "in/s", "done/s"):
        out.add_column(column, justify="right" if column in ("lag", "in/s", "done/s") else "left")
    for row in rows:
        members = row["members"] or [None]
        for i, member in enumerate(members):
            first = i == 0
            out.add_row(
                row["stage"] if first else "",
                row["group"] if first else "",
                row["state"] if first else "",
                _member(member),
                _partitions(member),
                str(row["lag"]) if first else "",
                f"{row['in_per_s']:.1f}" if first else "",
                f"{row['done_per_s']:.1f}" if first else "",
            )
    return out


def _member(member: dict[str, Any] | None) -> str:
    if member is None:
        return "[red]no members[/]"
    where = " ".join(x for x in (member["host"], member["client_id"]) if x)
    return f"{member['member_id'][-12:]} {where}".strip()


def _partitions(member: dict[str, Any] | None) -> str:
    if member is None:
        return ""
    parts = [
        f"{topic.rsplit('.', 1)[-1]}:{','.join(map(str, ps))}"
        for topic, ps in sorted(member["assignment"].items())
    ]
    return " ".join(parts) or "?"
