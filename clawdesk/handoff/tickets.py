"""Open a Zendesk ticket for every handoff, and keep trying until it exists.

One attempt is one exchange with Zendesk (the client does not retry on its own here):
the retry schedule lives in Postgres (`handoff_tickets.next_attempt_at`), so it
survives a worker restart and is visible to ops. A failure is never silent: each one
is counted (`clawdesk_handoff_ticket_failures_total{reason}`), logged with the
conversation and the next attempt, and shown in the agent inbox.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

from psycopg_pool import AsyncConnectionPool

from clawdesk.handoff import records as store
from clawdesk.handoff.records import TicketRow, TicketStatus
from clawdesk.integrations.http import (
    AuthError,
    ProviderError,
    ProviderUnavailable,
    RateLimited,
    ServerError,
)
from clawdesk.integrations.providers import Integrations, NotConfigured, ProviderSettings
from clawdesk.integrations.zendesk import Requester, Ticket, ZendeskClient
from clawdesk.ops import metrics
from clawdesk.settings import AppSettings
from clawdesk.storage import attachments, db
from clawdesk.storage.attachments import StoredAttachment

log = logging.getLogger(__name__)

MAX_COMMENT_CHARS = 60_000  # Zendesk caps a comment at 64 KB
MAX_TURN_CHARS = 2_000
ROLE_NAMES = {"customer": "Customer", "bot": "Bot", "agent": "Agent"}


@dataclass(frozen=True)
class Backoff:
    """Exponential backoff between attempts, capped; a provider's Retry-After wins."""

    initial_s: float
    max_s: float

    def delay(self, attempts: int, retry_after: float | None = None) -> float:
        """Seconds to wait after the `attempts`-th failed attempt."""
        if retry_after is not None:
            # Never sooner than the provider asked, never later than our cap.
            return min(self.max_s, max(retry_after, 0.0))
        return float(min(self.max_s, self.initial_s * 2 ** max(attempts - 1, 0)))


@dataclass(frozen=True)
class Failure:
    """Why an attempt failed and whether trying again can help."""

    reason: str
    retry: bool
    retry_after: float | None = None


def classify(error: BaseException) -> Failure:
    """The failure an attempt's exception stands for."""
    if isinstance(error, RateLimited):
        return Failure("rate_limited", True, error.retry_after)
    if isinstance(error, ServerError):
        return Failure("server_error", True)
    if isinstance(error, ProviderUnavailable):
        return Failure("unavailable", True)
    if isinstance(error, TimeoutError):
        return Failure("timeout", True)
    if isinstance(error, AuthError):
        # Wrong credentials: retried (slowly) so the tickets are made once ops fix them.
        return Failure("auth", True)
    if isinstance(error, ProviderError):
        return Failure("invalid", False)  # a 4xx Zendesk will refuse every time
    return Failure("error", True)  # our side (database blip, a bug): worth another try


def transcript(
    row: TicketRow,
    history: list[db.StoredMessage],
    files: Sequence[StoredAttachment] = (),
) -> str:
    """The ticket's first comment: who, why, and the conversation so far, with the files
    the customer sent named under their message (the agent inbox shows them)."""
    by_message: dict[str, list[StoredAttachment]] = {}
    for file in files:
        by_message.setdefault(file.message_id, []).append(file)
    lines = [
        f"Conversation {row.conversation_id} on {row.channel} was handed to a human "
        f"(reason: {row.reason}).",
        f"Customer: {row.customer_id}",
        "",
    ]
    for message in history:
        at = message.timestamp.strftime("%Y-%m-%d %H:%M:%S UTC")
        who = ROLE_NAMES.get(message.author, message.author)
        lines.append(f"[{at}] {who}: {message.text[:MAX_TURN_CHARS]}")
        lines.extend(f"    {file_line(f)}" for f in by_message.get(message.id, []))
    if not history and row.last_message:
        lines.append(f"Customer: {row.last_message[:MAX_TURN_CHARS]}")
    body = "\n".join(lines)
    if len(body) > MAX_COMMENT_CHARS:  # keep the newest turns: they say why a human is needed
        body = "…\n" + body[-MAX_COMMENT_CHARS:]
    return body


def file_line(file: StoredAttachment) -> str:
    """One file of the transcript: what it is, or why it was not kept."""
    if file.refused:
        return f"[{file.kind} not kept: {file.refused.replace('_', ' ')}]"
    size = f", {max(1, (file.size_bytes or 0) // 1024)} KB" if file.size_bytes else ""
    kind = file.content_type or "file"
    return f"[{file.kind} attached: {kind}{size}, id {file.id}; see the inbox]"


def subject(row: TicketRow) -> str:
    """A one-line ticket subject from the customer's last message."""
    text = " ".join(row.last_message.split())
    return f"[{row.channel}] {text[:80] or 'Conversation handed to a human'}"


async def open_ticket(
    client: ZendeskClient,
    row: TicketRow,
    history: list[db.StoredMessage],
    files: Sequence[StoredAttachment] = (),
) -> Ticket:
    """The conversation's open ticket, created with the transcript if it has none.

    Idempotent: the conversation id is the ticket's external id and the handoff's
    event id its idempotency key, so a retry after a lost answer makes no second ticket.
    """
    email = row.customer_id if row.channel == "email" and "@" in row.customer_id else None
    return await client.create_ticket(
        subject(row),
        transcript(row, history, files),
        Requester(name=row.customer_id[:100], email=email),
        ["clawdesk", "handoff", f"channel_{row.channel}", row.reason],
        row.conversation_id,
        idempotency_key=f"handoff-{row.event_id}",
    )


def zendesk_client(settings: object) -> ZendeskClient:
    """A Zendesk client that makes one attempt per call (raises `NotConfigured`)."""
    provider = ProviderSettings.model_validate(settings, from_attributes=True)
    # The table schedules the retries; a call that retried inside would hold the agent.
    single = provider.model_copy(update={"provider_max_attempts": 1})
    return Integrations(single).zendesk


@dataclass
class HandoffTickets:
    """Attempts and retries of handoff tickets for one worker."""

    pool: AsyncConnectionPool
    client_factory: Callable[[], ZendeskClient]
    backoff: Backoff
    timeout_s: float
    lease_s: float
    reopen_window_s: float = 0.0
    _client: ZendeskClient | None = field(default=None, init=False)
    _not_configured: NotConfigured | None = field(default=None, init=False)
    _reopen_checked: bool = field(default=False, init=False)

    @classmethod
    def from_settings(cls, settings: AppSettings, pool: AsyncConnectionPool) -> HandoffTickets:
        """A worker's ticket machinery: Zendesk from the settings, made on first use."""
        return cls(
            pool=pool,
            client_factory=lambda: zendesk_client(settings),
            backoff=Backoff(settings.handoff_backoff_initial_s, settings.handoff_backoff_max_s),
            timeout_s=settings.handoff_ticket_timeout_s,
            lease_s=settings.handoff_claim_lease_s,
            reopen_window_s=settings.handoff_reopen_window_s,
        )

    def client(self) -> ZendeskClient:
        """The Zendesk client, made on first use (raises `NotConfigured`)."""
        if self._not_configured is not None:
            raise self._not_configured
        if self._client is None:
            try:
                self._client = self.client_factory()
            except NotConfigured as err:
                self._not_configured = err
                # Once per worker, not per handoff: it is a deployment choice, not an incident.
                log.warning(
                    "ticket system not configured: handoffs reach the agent inbox only",
                    extra={"provider": err.provider, "missing": err.missing},
                )
                raise
        return self._client

    async def attempt(self, row: TicketRow) -> TicketStatus:
        """One attempt at the handoff's ticket; records the outcome. Never raises
        (but for cancellation): a failure is a state of the row, not an exception."""
        try:
            client = self.client()
        except NotConfigured as err:
            await store.mark_final(self.pool, row.event_id, TicketStatus.NOT_CONFIGURED, str(err))
            metrics.HANDOFF_TICKETS.labels("not_configured").inc()
            return TicketStatus.NOT_CONFIGURED
        try:
            async with asyncio.timeout(self.timeout_s):
                history = await db.fetch_history(self.pool, row.conversation_id)
                files = await attachments.of_conversation(self.pool, row.conversation_id)
                ticket = await open_ticket(client, row, history, files)
        except asyncio.CancelledError:
            raise
        except Exception as err:
            return await self._failed(row, err)
        await store.mark_created(self.pool, row.event_id, str(ticket.id), ticket.url)
        metrics.HANDOFF_TICKETS.labels("created").inc()
        log.info(
            "handoff ticket created",
            extra={
                "event_id": row.event_id,
                "conversation_id": row.conversation_id,
                "ticket_id": ticket.id,
                "attempts": row.attempts + 1,
            },
        )
        return TicketStatus.CREATED

    async def _failed(self, row: TicketRow, err: BaseException) -> TicketStatus:
        failure = classify(err)
        error = f"{type(err).__name__}: {err}"
        metrics.HANDOFF_TICKET_FAILURES.labels(failure.reason).inc()
        context = {
            "event_id": row.event_id,
            "conversation_id": row.conversation_id,
            "tenant_id": row.tenant_id,
            "reason": failure.reason,
            "error": error[:500],
        }
        if not failure.retry:
            await store.mark_final(self.pool, row.event_id, TicketStatus.FAILED, error)
            metrics.HANDOFF_TICKETS.labels("failed").inc()
            log.error("handoff ticket refused; needs a person to look", extra=context)
            return TicketStatus.FAILED
        delay = self.backoff.delay(row.attempts + 1, failure.retry_after)
        attempts = await store.mark_retry(self.pool, row.event_id, delay, error)
        metrics.HANDOFF_TICKETS.labels("retry").inc()
        log.warning(
            "handoff ticket failed; will retry",
            extra={**context, "attempts": attempts, "retry_in_s": round(delay, 3)},
        )
        return TicketStatus.PENDING

    async def reopen_not_configured(self) -> int:
        """Once per worker: if the ticket system is configured (settings are read at
        start), the recent handoffs recorded without one become pending and due now.

        A deployment that adds Zendesk later thus gets tickets for the handoffs the
        inbox alone took meanwhile (within `reopen_window_s`). Returns how many.
        """
        if self._reopen_checked:
            return 0
        try:
            self.client()
        except NotConfigured:
            self._reopen_checked = True
            return 0
        reopened = 0
        if self.reopen_window_s > 0:
            reopened = await store.reopen_not_configured(self.pool, self.reopen_window_s)
        self._reopen_checked = True  # only now: a database error tries again next tick
        if reopened:
            log.info(
                "ticket system configured: handoffs recorded without one are pending again",
                extra={"reopened": reopened, "window_s": self.reopen_window_s},
            )
        return reopened

    async def retry_due(self, limit: int) -> list[TicketStatus]:
        """Attempt every due pending ticket (up to `limit`); refresh the pending gauge.
        The first call also reopens the handoffs recorded without a ticket system."""
        await self.reopen_not_configured()
        rows = await store.claim_due(self.pool, limit, self.lease_s)
        outcomes = [await self.attempt(row) for row in rows]
        metrics.HANDOFF_TICKETS_PENDING.set(await store.count_pending(self.pool))
        return outcomes

    async def aclose(self) -> None:
        """Close the Zendesk client, if one was made."""
        if self._client is not None:
            await self._client.aclose()
            self._client = None
