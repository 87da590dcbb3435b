"""The Faust topic objects of the running app, made from the declarations in `topics`.

Values and keys travel as raw bytes: each agent validates them with the pydantic
model of the topic's spec, so a malformed event becomes a dead letter, not a crash.
"""

from __future__ import annotations

import faust

from clawdesk.app import app
from clawdesk.settings import app_settings
from topics import (
    ALL_TOPICS,
    TopicSpec,
    accepted_spec,
    context_spec,
    control_spec,
    dead_letter_spec,
    handoff_spec,
    inbound_spec,
    nlu_spec,
    outbound_spec,
    receipt_spec,
    reply_spec,
    skill_result_spec,
    worker_spec,
)


def make_topic(spec: TopicSpec) -> faust.TopicT:
    """A raw-bytes Faust topic for a declaration."""
    settings = app_settings()
    return app.topic(
        spec.name(settings),
        key_type=bytes,
        value_type=bytes,
        key_serializer="raw",
        value_serializer="raw",
        partitions=spec.partitions(settings),
        replicas=settings.topic_replicas,
    )


inbound_topic = make_topic(inbound_spec)
accepted_topic = make_topic(accepted_spec)
nlu_topic = make_topic(nlu_spec)
context_topic = make_topic(context_spec)
skill_result_topic = make_topic(skill_result_spec)
reply_topic = make_topic(reply_spec)
outbound_topic = make_topic(outbound_spec)
receipt_topic = make_topic(receipt_spec)
handoff_topic = make_topic(handoff_spec)
control_topic = make_topic(control_spec)
dead_letter_topic = make_topic(dead_letter_spec)
worker_topic = make_topic(worker_spec)

__all__ = [
    "ALL_TOPICS",
    "accepted_topic",
    "context_topic",
    "control_topic",
    "dead_letter_topic",
    "handoff_topic",
    "inbound_topic",
    "make_topic",
    "nlu_topic",
    "outbound_topic",
    "receipt_topic",
    "reply_topic",
    "skill_result_topic",
    "worker_topic",
]
