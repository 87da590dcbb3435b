"""`clawdesk status` figures from two observations (pure: no broker)."""

from __future__ import annotations

from rich.console import Console

from clawdesk.ops.groups import GroupView, Member, PartitionLag, decode_assignment
from clawdesk.ops.status import rates, table


def view(committed: int | None, high: int, at: float, members: int = 1) -> GroupView:
    parts = [PartitionLag("cs.accepted", 0, committed, high, high - (committed or 0))]
    crew = [Member(f"m{i}", "", "host", {"cs.accepted": [0]}) for i in range(members)]
    return GroupView("nlu", "clawdesk-nlu", "Stable", crew, parts, observed_at=at)


def test_rates_are_arrivals_and_commits_per_second() -> None:
    assert rates(view(10, 30, 0.0), view(20, 50, 2.0), 2.0) == (10.0, 5.0)


def test_a_group_that_never_committed_counts_from_nothing() -> None:
    assert rates(view(None, 5, 0.0), view(None, 9, 1.0), 1.0) == (4.0, 0.0)


def test_the_table_shows_a_group_without_members_in_red() -> None:
    row = {**view(3, 9, 0.0, members=0).as_dict(), "in_per_s": 1.0, "done_per_s": 0.0}
    console = Console(record=True, width=160)
    console.print(table([row]))
    text = console.export_text()
    assert "no members" in text and "clawdesk-nlu" in text and " 6 " in text


def test_an_unreadable_assignment_shows_none() -> None:
    assert decode_assignment(b"") == {}
    assert decode_assignment(b"\x00\x01junk") == {}


def test_the_exporter_publishes_lag_members_and_offsets() -> None:
    from prometheus_client import REGISTRY

    from clawdesk.ops.exporter import publish

    publish([view(4, 10, 0.0, members=2)])
    labels = {"stage": "nlu", "group": "clawdesk-nlu", "topic": "cs.accepted", "partition": "0"}
    assert REGISTRY.get_sample_value("clawdesk_group_lag", labels) == 6
    assert REGISTRY.get_sample_value("clawdesk_group_committed_offset", labels) == 4
    assert (
        REGISTRY.get_sample_value(
            "clawdesk_group_members", {"stage": "nlu", "group": "clawdesk-nlu"}
        )
        == 2
    )
    assert (
        REGISTRY.get_sample_value(
            "clawdesk_topic_high_watermark", {"topic": "cs.accepted", "partition": "0"}
        )
        == 10
    )
