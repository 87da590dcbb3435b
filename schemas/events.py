"""The events of every hop of the pipeline.

Each downstream event embeds the one it was derived from, so a stage needs no
lookups to do its work and a replayed topic carries its whole lineage.
"""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum
from typing import Any, Literal

from pydantic import Field, model_validator

from schemas.base import Event, Record, new_id, utc_now


class Turn(Record):
    """One utterance in the conversation memory."""

    role: Literal["customer", "bot", "agent"]
    text: str
    at: datetime


class Entity(Record):
    """A value found in the customer's text (order number, e-mail, amount...)."""

    kind: str
    value: str
    start: int = 0
    end: int = 0


class MessageKind(StrEnum):
    """What the customer did, as the channel's conventions say (not what they meant)."""

    TEXT = "text"  # wrote something (or captioned a file): the pipeline reads the text
    COMMAND = "command"  # a bot command such as Telegram's /start or /help
    FOLLOW = "follow"  # started following the account (WeChat `subscribe`)
    UNFOLLOW = "unfollow"  # stopped following: recorded, never answered
    CHOICE = "choice"  # pressed a button, a list item, a callback button or a menu entry
    MEDIA = "media"  # sent files (images, voice, documents) without text


class Attachment(Record):
    """A file the customer sent: the provider's reference to it, and once fetched and
    checked by ingest, where it is stored (`object_key`) and what it really is."""

    kind: Literal["image", "voice", "audio", "video", "file", "sticker"]
    provider_ref: str = Field(min_length=1, max_length=1000, description="file / media id")
    declared_type: str = Field(default="", max_length=200, description="as the provider says")
    declared_bytes: int | None = Field(default=None, ge=0)
    filename: str = Field(default="", max_length=255)
    attachment_id: str | None = Field(default=None, description="row id once stored")
    object_key: str | None = Field(default=None, max_length=500)
    content_type: str | None = Field(default=None, description="sniffed from the bytes")
    size_bytes: int | None = Field(default=None, ge=0)


class InboundMessage(Event):
    """A customer's message as a connector put it on the inbound topic.

    Fields after `metadata` are optional so that events written before them parse."""

    channel_message_id: str = Field(min_length=1, max_length=200)
    customer_id: str = Field(min_length=1, max_length=200)
    text: str = Field(max_length=20_000)
    received_at: datetime = Field(default_factory=utc_now)
    metadata: dict[str, str] = Field(default_factory=dict)
    kind: MessageKind = MessageKind.TEXT
    command: str | None = Field(
        default=None, max_length=64, description="the command's name (COMMAND), e.g. start"
    )
    choice: str | None = Field(
        default=None, max_length=256, description="the id of the button or menu entry (CHOICE)"
    )
    intent: str | None = Field(
        default=None,
        max_length=64,
        description="an intent the channel states outright (a menu entry or button mapped "
        "to it): the nlu stage takes it instead of classifying the text",
    )
    edit_of: str | None = Field(
        default=None,
        max_length=200,
        description="channel_message_id of the message this one edits",
    )
    attachments: list[Attachment] = Field(default_factory=list, max_length=20)


class ConversationSnapshot(Record):
    """What ingest knows of the conversation when this message arrived."""

    turns: list[Turn] = Field(default_factory=list)
    slots: dict[str, str] = Field(default_factory=dict)
    language: str | None = None
    handoff: bool = False


class AcceptedMessage(Event):
    """An inbound message after ingest: new (not a duplicate), stored, with memory."""

    message: InboundMessage
    memory: ConversationSnapshot


class NluResult(Event):
    """The intent, confidence, entities and language of a message."""

    accepted: AcceptedMessage
    intent: str
    confidence: float = Field(ge=0.0, le=1.0)
    entities: list[Entity] = Field(default_factory=list)
    language: str
    model_version: str
    query: str | None = Field(
        default=None,
        description="what to search the KB with when it is more than the text "
        "(a follow-up joined to the question it follows)",
    )
    decided_by: str = Field(
        default="model",
        description="model | action | cue | soft | follow_up | oos | unsure | channel "
        "(see clawdesk.nlu.resolve)",
    )


class KbHit(Record):
    """One knowledge-base passage and how well it matched."""

    doc_id: str
    title: str
    section: str
    text: str
    score: float = Field(description="best dense cosine similarity (question or passage)")
    multilingual: float = Field(
        default=0.0, description="best cosine of the multilingual encoder (0: none, or unread)"
    )
    keyword: float = Field(default=0.0, description="share of the query's terms it contains")
    fused: float = Field(default=0.0, description="reciprocal-rank-fusion score")


class RetrievalContext(Event):
    """What the knowledge base has to say about the message."""

    nlu: NluResult
    hits: list[KbHit] = Field(default_factory=list)
    answerable: bool
    kb_version: str


class SkillStatus(StrEnum):
    """How a skill run ended."""

    OK = "ok"
    NOT_FOUND = "not_found"
    NEEDS_INPUT = "needs_input"
    FAILED = "failed"
    SKIPPED = "skipped"
    NEEDS_CONFIRMATION = "needs_confirmation"
    REFUSED = "refused"
    UNAVAILABLE = "unavailable"
    IN_PROGRESS = "in_progress"


class SkillResult(Event):
    """The outcome of running (or deciding not to run) a skill."""

    context: RetrievalContext
    skill: str | None
    status: SkillStatus
    data: dict[str, Any] = Field(default_factory=dict)
    message: str = ""
    # Optional so that results written before it parse; what `skill` was (to be) run with.
    arguments: dict[str, Any] = Field(
        default_factory=dict, description="the arguments the skill was run (or asked) with"
    )


class TurnOutcome(StrEnum):
    """What one bot reply did for the customer (decided by the reply stage)."""

    KB_ANSWER = "kb_answer"  # answered from a knowledge-base passage
    SKILL_RESOLVED = "skill_resolved"  # a skill ran and its result was given
    SKILL_PENDING = "skill_pending"  # asked for what a skill needs, or to confirm it
    SKILL_FAILED = "skill_failed"  # not found, unavailable, refused or failed
    HANDOFF = "handoff"  # handed to a human
    CLARIFY = "clarify"  # not understood: asked to rephrase
    SMALL_TALK = "small_talk"  # greeting, thanks, goodbye


class Reply(Event):
    """A reply to send back to the customer on the channel they wrote on."""

    reply_id: str
    in_reply_to: str
    customer_id: str
    text: str
    language: str
    intent: str
    confidence: float
    sources: list[str] = Field(default_factory=list)
    handoff: bool = False
    received_at: datetime
    metadata: dict[str, str] = Field(default_factory=dict)
    author: Literal["bot", "agent"] = Field(
        default="bot", description="who wrote it: the bot, or a human agent in the inbox"
    )
    # Optional so that replies written before outcomes existed (and agents' replies) parse.
    outcome: TurnOutcome | None = Field(
        default=None, description="what a bot reply did (None for a human agent's reply)"
    )
    llm: bool = Field(default=False, description="written by the LLM (else by the templates)")
    proposed: dict[str, Any] | None = Field(
        default=None,
        description="a side effect the LLM asked the customer to confirm, as "
        "{skill, args, facts}: the skills stage keeps it as the pending question",
    )
    attachments: list[Attachment] = Field(
        default_factory=list,
        description="files sent with the reply (an agent's image), already in the object "
        "store: `object_key` and `attachment_id` set",
    )
    slots: dict[str, str] = Field(
        default_factory=dict,
        description="what the message answered named (order number, tracking number, "
        "e-mail): the ingest stage remembers them, so the next message's nlu knows the "
        "order 'it' refers to",
    )


class DeliveryStatus(StrEnum):
    """The status a provider reported for a reply."""

    QUEUED = "queued"
    SENT = "sent"
    DELIVERED = "delivered"
    READ = "read"
    FAILED = "failed"


class DeliveryReceipt(Event):
    """A change of a reply's delivery status."""

    reply_id: str
    status: DeliveryStatus
    provider_message_id: str | None = None
    detail: str = ""


class Handoff(Event):
    """The conversation is handed to a human."""

    reason: str
    customer_id: str
    last_message: str
    ticket_id: str | None = None


class ControlAction(StrEnum):
    """What a control event asks the pipeline to do with a conversation."""

    HAND_BACK = "hand_back"
    AGENT_REPLY = "agent_reply"  # remember a human agent's reply as a turn of memory


class ConversationControl(Event):
    """An operator's decision about a conversation (a human agent handing it back to the
    bot), or a human agent's reply for the conversation memory (`text`), so the bot
    knows what was said while a person had the conversation. Applied by the worker that
    owns the conversation's memory."""

    action: ControlAction
    agent_id: str = Field(min_length=1, max_length=200, description="who decided it")
    note: str = Field(default="", max_length=2000)
    text: str = Field(default="", max_length=20_000, description="the reply (agent_reply)")

    @model_validator(mode="after")
    def _a_reply_has_text(self) -> ConversationControl:
        if self.action is ControlAction.AGENT_REPLY and not self.text.strip():
            raise ValueError("an agent_reply control carries the text of the reply")
        return self


class DeadLetter(Record):
    """An event a stage could not process, with why.

    `event` is the raw payload as text that any store takes: NUL bytes and invalid
    UTF-8 are escaped (`escaped`), and a payload over the dead-letter bound keeps only
    its head (`truncated`), with the whole payload's length and SHA-256 as a reference.
    The fields after `attempts` are optional so that letters written before them parse.
    """

    event: str
    error: str
    stage: str
    attempts: int = Field(ge=1)
    occurred_at: datetime = Field(default_factory=utc_now)
    schema_version: int = 1
    letter_id: str = Field(
        default_factory=new_id, description="stores the letter once however often it is sent"
    )
    event_bytes: int | None = Field(default=None, ge=0, description="length of the raw payload")
    event_sha256: str | None = Field(default=None, description="hex SHA-256 of the raw payload")
    truncated: bool = Field(default=False, description="`event` holds only the payload's head")
    escaped: bool = Field(
        default=False, description="NULs or invalid UTF-8 in the payload were escaped in `event`"
    )

    def to_bytes(self) -> bytes:
        """Serialise to JSON bytes for the wire."""
        return self.model_dump_json().encode()


class WorkerReport(Record):
    """What one worker owns after a rebalance, as it tells ops (`clawdesk status`).

    The broker knows a group's members; not every broker (Tansu) returns their
    assignments or drops a member that stopped, so each worker reports its own, keyed
    by its member id: after each rebalance, again every `worker_report_interval_s`,
    and once more when it stops."""

    group: str
    stage: str = Field(description="the stage the worker runs; empty: every stage")
    member_id: str
    host: str
    pid: int
    assignment: dict[str, list[int]] = Field(description="topic → partitions owned")
    leaving: bool = Field(default=False, description="the worker is stopping")
    reported_at: datetime = Field(default_factory=utc_now)
    schema_version: int = 1

    def to_bytes(self) -> bytes:
        """Serialise to JSON bytes for the wire."""
        return self.model_dump_json().encode()

    @classmethod
    def from_bytes(cls, data: bytes | str) -> WorkerReport:
        """Parse and validate JSON bytes from the wire (raises `ValidationError`)."""
        return cls.model_validate_json(data)


ALL_EVENTS: dict[str, type[Record]] = {
    "inbound_message": InboundMessage,
    "accepted_message": AcceptedMessage,
    "nlu_result": NluResult,
    "retrieval_context": RetrievalContext,
    "skill_result": SkillResult,
    "reply": Reply,
    "delivery_receipt": DeliveryReceipt,
    "handoff": Handoff,
    "conversation_control": ConversationControl,
    "dead_letter": DeadLetter,
    "worker_report": WorkerReport,
}
