"""Every topic of the pipeline, declared once: name, partitions, key and value schema.

Conversation-scoped topics are keyed by conversation id so that one conversation
stays in order on one partition, and so every stage's table writes stay
co-partitioned with its input.
"""

from __future__ import annotations

from dataclasses import dataclass

from clawdesk.settings import AppSettings
from schemas import (
    AcceptedMessage,
    ConversationControl,
    DeadLetter,
    DeliveryReceipt,
    Handoff,
    InboundMessage,
    NluResult,
    Record,
    Reply,
    RetrievalContext,
    SkillResult,
    WorkerReport,
)


@dataclass(frozen=True)
class TopicSpec:
    """A topic's declaration. `suffix` is appended to the configured prefix."""

    suffix: str
    value_schema: type[Record]
    key: str = "conversation_id"
    dead_letter: bool = False
    single_partition: bool = False  # small ops topics, read whole by one reader

    def name(self, settings: AppSettings) -> str:
        """The full topic name for these settings."""
        return f"{settings.topic_prefix}.{self.suffix}"

    def partitions(self, settings: AppSettings) -> int:
        """Partition count from settings (never a literal in code)."""
        if self.single_partition:
            return 1
        return settings.dead_letter_partitions if self.dead_letter else settings.topic_partitions


inbound_spec = TopicSpec("inbound", InboundMessage)
accepted_spec = TopicSpec("accepted", AcceptedMessage)
nlu_spec = TopicSpec("nlu", NluResult)
context_spec = TopicSpec("context", RetrievalContext)
skill_result_spec = TopicSpec("skill-results", SkillResult)
reply_spec = TopicSpec("replies", Reply)
outbound_spec = TopicSpec("outbound", Reply)
receipt_spec = TopicSpec("receipts", DeliveryReceipt)
handoff_spec = TopicSpec("handoffs", Handoff)
# Operators' decisions (hand back to the bot), keyed by conversation like the memory table.
control_spec = TopicSpec("control", ConversationControl)
dead_letter_spec = TopicSpec("dead-letter", DeadLetter, key="stage", dead_letter=True)
# Each worker's assignment after every rebalance, for `clawdesk status` and the exporter.
worker_spec = TopicSpec("workers", WorkerReport, key="member_id", single_partition=True)

ALL_TOPICS: tuple[TopicSpec, ...] = (
    inbound_spec,
    accepted_spec,
    nlu_spec,
    context_spec,
    skill_result_spec,
    reply_spec,
    outbound_spec,
    receipt_spec,
    handoff_spec,
    control_spec,
    dead_letter_spec,
    worker_spec,
)

__all__ = [
    "ALL_TOPICS",
    "TopicSpec",
    "accepted_spec",
    "context_spec",
    "control_spec",
    "dead_letter_spec",
    "handoff_spec",
    "inbound_spec",
    "nlu_spec",
    "outbound_spec",
    "receipt_spec",
    "reply_spec",
    "skill_result_spec",
    "worker_spec",
]
