"""The JSON shapes of the web chat API (request bodies and responses)."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Literal

from pydantic import AfterValidator, BaseModel, Field, StrictBool

from clawdesk.storage.db import StoredMessage
from schemas import Reply

MAX_TEXT_CHARS = 4000
# Web conversation ids end up in URLs (/ws/{id}, history), so keep them URL-safe.
CONVERSATION_ID_PATTERN = r"^[A-Za-z0-9_.:-]{1,200}$"
TENANT_ID_PATTERN = r"^[A-Za-z0-9_.-]{1,64}$"


def _sendable_text(value: str) -> str:
    text = value.strip()
    if not 1 <= len(text) <= MAX_TEXT_CHARS:
        raise ValueError(f"text must be 1 to {MAX_TEXT_CHARS} characters after trimming whitespace")
    return text


# Message text a customer or an agent sends: trimmed, 1..MAX_TEXT_CHARS characters.
SendableText = Annotated[str, AfterValidator(_sendable_text)]


class WebConversationIn(BaseModel):
    """A web visitor starting a conversation (with the default tenant if none named)."""

    tenant_id: str | None = Field(default=None, pattern=TENANT_ID_PATTERN)


class WebConversation(BaseModel):
    """A new web conversation and the token that opens it (keep both)."""

    conversation_id: str
    token: str


class WebMessageIn(BaseModel):
    """A customer's message as the web widget posts it. A `conversation_id` must come
    with its token (`Authorization: Bearer <token>`); without one, a conversation starts."""

    conversation_id: str | None = Field(default=None, pattern=CONVERSATION_ID_PATTERN)
    customer_id: str | None = Field(default=None, min_length=1, max_length=200)
    tenant_id: str | None = Field(default=None, pattern=TENANT_ID_PATTERN)
    text: SendableText
    client_message_id: str = Field(min_length=1, max_length=200)


class Accepted(BaseModel):
    """The answer to an enqueued message: where the reply will show up, and the token
    that reads it (history, deliveries, the reply socket) and posts to it again."""

    conversation_id: str
    event_id: str
    token: str


class WebImage(BaseModel):
    """An image of a message as the widget shows it: `url` opens it for a few minutes."""

    url: str
    content_type: str | None = None


class HistoryItem(BaseModel):
    """One stored message of a conversation."""

    id: str
    author: str
    text: str
    timestamp: datetime
    images: list[WebImage] = Field(default_factory=list)

    @classmethod
    def of(cls, stored: StoredMessage, images: list[WebImage] | None = None) -> HistoryItem:
        """The API view of a stored message (with its images' links)."""
        return cls(
            id=stored.id,
            author=stored.author,
            text=stored.text,
            timestamp=stored.timestamp,
            images=images or [],
        )


class ReplyPush(BaseModel):
    """What a WebSocket client receives for each reply."""

    type: Literal["reply"] = "reply"
    reply_id: str
    text: str
    sources: list[str]
    handoff: bool
    author: Literal["bot", "agent"] = "bot"
    # The customer's message this answers: the widget marks it (and those before) answered.
    in_reply_to: str = ""
    images: list[WebImage] = Field(default_factory=list)

    @classmethod
    def of(cls, reply: Reply, images: list[WebImage] | None = None) -> ReplyPush:
        """The push message for a reply (with links to its images)."""
        return cls(
            reply_id=reply.reply_id,
            text=reply.text,
            sources=reply.sources,
            handoff=reply.handoff,
            author=reply.author,
            in_reply_to=reply.in_reply_to,
            images=images or [],
        )


class FeedbackIn(BaseModel):
    """A customer's "did this help?" on one bot reply (true or false, nothing else)."""

    helpful: StrictBool


class Feedback(BaseModel):
    """The answer stored for the reply (a later vote replaces it)."""

    reply_id: str
    helpful: bool
