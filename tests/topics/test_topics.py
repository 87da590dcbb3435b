"""Topics are declared once, partitioned from settings, keyed by conversation."""

from __future__ import annotations

from clawdesk.settings import AppSettings
from topics import ALL_TOPICS, dead_letter_spec, inbound_spec


def test_partition_counts_come_from_settings():
    settings = AppSettings(topic_partitions=12, dead_letter_partitions=2, topic_prefix="x")
    assert inbound_spec.partitions(settings) == 12
    assert dead_letter_spec.partitions(settings) == 2
    assert inbound_spec.name(settings) == "x.inbound"


def test_names_are_unique_and_conversation_keyed():
    settings = AppSettings()
    names = [t.name(settings) for t in ALL_TOPICS]
    assert len(names) == len(set(names))
    assert all(
        t.key == "conversation_id"
        for t in ALL_TOPICS
        if not t.dead_letter and not t.single_partition
    )
