"""The types a skill is made of: what it is given (`SkillContext`), what it returns
(`SkillOutcome`), and the skill itself (manifest + `run`)."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from enum import StrEnum
from typing import TYPE_CHECKING, Any

from pydantic import BaseModel, ConfigDict, Field

from clawdesk.integrations.providers import Integrations, NotConfigured
from clawdesk.skills.manifest import SkillManifest

if TYPE_CHECKING:
    from clawdesk.skills.replies import SkillReply
    from clawdesk.skills.sources import OrderSource, TrackingSource


class OutcomeStatus(StrEnum):
    """How a skill run ended. The first four match `schemas.SkillStatus`."""

    OK = "ok"
    NOT_FOUND = "not_found"
    NEEDS_INPUT = "needs_input"
    FAILED = "failed"
    NEEDS_CONFIRMATION = "needs_confirmation"  # side effect: ask the customer first
    REFUSED = "refused"  # not allowed for this tenant
    UNAVAILABLE = "unavailable"  # provider not configured or rejecting our credentials
    IN_PROGRESS = "in_progress"  # another worker holds this idempotency key right now


class SkillOutcome(BaseModel):
    """What a skill run produced, for the reply stage and the audit log."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    status: OutcomeStatus
    skill: str = ""
    data: dict[str, Any] = Field(default_factory=dict)
    message: str = ""
    retryable: bool = Field(default=False, description="a later attempt may succeed")
    replayed: bool = Field(default=False, description="the stored result of an earlier run")

    @classmethod
    def ok(cls, data: dict[str, Any] | None = None, message: str = "") -> SkillOutcome:
        return cls(status=OutcomeStatus.OK, data=data or {}, message=message)

    @classmethod
    def not_found(cls, data: dict[str, Any] | None = None, message: str = "") -> SkillOutcome:
        return cls(status=OutcomeStatus.NOT_FOUND, data=data or {}, message=message)

    @classmethod
    def needs_input(cls, message: str, data: dict[str, Any] | None = None) -> SkillOutcome:
        return cls(status=OutcomeStatus.NEEDS_INPUT, data=data or {}, message=message)

    @classmethod
    def failed(
        cls, message: str, data: dict[str, Any] | None = None, *, retryable: bool = False
    ) -> SkillOutcome:
        return cls(
            status=OutcomeStatus.FAILED, data=data or {}, message=message, retryable=retryable
        )


@dataclass(frozen=True)
class SkillContext:
    """Who and where a skill runs for. Built by the pipeline, never from message text.

    `customer_email` is an identity the channel vouches for (signed-in app user, e-mail
    channel), not one typed in the chat. `idempotency_key` is set by the runner.
    `orders` / `tracking` are where order and parcel reads go (the pipeline passes
    cached sources, or the demo shop); unset, the Shopify and DHL clients are read.
    """

    tenant_id: str
    conversation_id: str
    customer_id: str
    integrations: Integrations | None = None
    customer_email: str | None = None
    customer_name: str | None = None
    language: str = "en"
    idempotency_key: str | None = None
    orders: OrderSource | None = None
    tracking: TrackingSource | None = None

    @property
    def providers(self) -> Integrations:
        """The provider clients (raises `NotConfigured` when the worker has none)."""
        if self.integrations is None:
            raise NotConfigured("integrations", ["provider settings"])
        return self.integrations

    @property
    def order_source(self) -> OrderSource:
        """Where orders are read (raises `NotConfigured` when there is nowhere)."""
        return self.orders if self.orders is not None else self.providers.shopify

    @property
    def tracker(self) -> TrackingSource:
        """Where parcels are tracked (raises `NotConfigured` when there is nowhere)."""
        return self.tracking if self.tracking is not None else self.providers.dhl


SkillRun = Callable[[SkillContext, dict[str, Any]], Awaitable[SkillOutcome]]
# A preview says what `run` would do, or returns the outcome when its read-only checks
# already show that `run` cannot go ahead (nothing to confirm then).
SkillPreview = Callable[[SkillContext, dict[str, Any]], Awaitable["str | SkillOutcome"]]


@dataclass(frozen=True)
class Skill:
    """A plugin: its manifest, `async run(ctx, args)`, for side-effecting skills an
    optional read-only `preview(ctx, args)` saying what `run` would do (for the
    customer's confirmation), and optionally its own `reply` for results its manifest's
    templates cannot say by simple substitution (see `clawdesk.skills.render`)."""

    manifest: SkillManifest
    run: SkillRun
    preview: SkillPreview | None = None
    reply: SkillReply | None = None

    @property
    def name(self) -> str:
        return self.manifest.name
