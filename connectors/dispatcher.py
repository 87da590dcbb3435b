"""Send replies through their channels: once, with bounded concurrency, retried, and
dead-lettered when the provider will not take them.

- Never twice: a reply is claimed in Postgres (`connectors.deliveries`) before it is sent
  and is never claimed again once it is recorded sent.
- Never lost: a reply not confirmed sent goes back to `queued` and is tried again, here
  (backoff, or the provider's Retry-After) or by the redelivered event after a crash.
- A send whose outcome is unknown (the request may have reached the provider, the
  answer got lost) is not repeated: it is dead-lettered for an operator to look at,
  because sending it again could give the customer the message twice.
- Each channel has its own semaphore, so one slow provider cannot take every slot.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass, field
from enum import StrEnum

import psycopg
from psycopg_pool import AsyncConnectionPool

from clawdesk.ops import metrics
from clawdesk.retrying import RetryPolicy, retrying
from clawdesk.settings import ChannelSettings
from clawdesk.storage import db, inbound_log
from connectors import deliveries
from connectors.config import DeliveryError, NotSendable, ProviderUnavailable
from connectors.deliveries import Claim
from schemas import Channel, DeliveryReceipt, DeliveryStatus, Reply, utc_now

log = logging.getLogger(__name__)

STAGE = "dispatch"

Send = Callable[[Reply], Awaitable[str]]
PublishReceipt = Callable[[DeliveryReceipt], Awaitable[None]]
DeadLetter = Callable[[Reply, BaseException, int], Awaitable[None]]


class Outcome(StrEnum):
    """How one reply's dispatch ended."""

    SENT = "sent"
    DUPLICATE = "duplicate"
    DEAD_LETTERED = "dead_lettered"
    PARKED = "parked"  # the provider (or Postgres) is down: re-driven from the inbound log


class ClaimedElsewhere(Exception):
    """Another worker holds the reply's claim; try again when its lease runs out."""

    def __init__(self, wait_s: float) -> None:
        super().__init__(f"another worker is sending this reply (lease {wait_s:.1f} s)")
        self.retry_after = wait_s


def dispatch_policy(settings: ChannelSettings) -> RetryPolicy:
    """The dispatcher's retry policy (around whole sends, above the connectors' own)."""
    return RetryPolicy(
        attempts=settings.dispatch_attempts,
        initial_backoff_s=0.5,
        max_backoff_s=10.0,
        jitter_s=0.5,
        max_retry_after_s=settings.dispatch_max_retry_after_s,
        deadline_s=settings.dispatch_deadline_s,
    )


def _retryable(error: BaseException) -> bool:
    # A timed-out send may have reached the provider: like maybe_delivered, not repeated.
    if isinstance(error, ProviderUnavailable):
        return not error.maybe_delivered
    return isinstance(error, ClaimedElsewhere | psycopg.OperationalError)


@dataclass
class Dispatcher:
    """Delivers replies; `deliver` never raises (but for cancellation)."""

    pool: AsyncConnectionPool
    settings: ChannelSettings
    send: Send
    publish_receipt: PublishReceipt
    dead_letter: DeadLetter
    _slots: dict[Channel, asyncio.Semaphore] = field(default_factory=dict)

    def slots(self, channel: Channel) -> asyncio.Semaphore:
        """The channel's semaphore: `dispatch_channel_concurrency[channel]` sends at once."""
        if channel not in self._slots:
            limit = self.settings.dispatch_channel_concurrency.get(
                channel.value, self.settings.dispatch_concurrency
            )
            self._slots[channel] = asyncio.Semaphore(max(1, limit))
        return self._slots[channel]

    async def deliver_all(self, replies: Iterable[Reply]) -> list[Outcome]:
        """Deliver a batch: conversations side by side, each conversation's in order."""
        by_conversation: dict[str, list[Reply]] = {}
        for reply in replies:
            by_conversation.setdefault(reply.conversation_id, []).append(reply)
        results = await asyncio.gather(
            *(self._deliver_in_order(group) for group in by_conversation.values())
        )
        return [outcome for group in results for outcome in group]

    async def _deliver_in_order(self, replies: list[Reply]) -> list[Outcome]:
        return [await self.deliver(reply) for reply in replies]

    async def deliver(self, reply: Reply) -> Outcome:
        """Send one reply unless it was sent before; retry, or dead-letter it."""
        started = time.perf_counter()
        attempts = 0
        try:
            async for attempt in retrying(dispatch_policy(self.settings), _retryable):
                with attempt:
                    attempts = attempt.retry_state.attempt_number
                    outcome = await self._attempt(reply)
        except asyncio.CancelledError:
            raise
        except Exception as err:
            if _retryable(err) and reply.author == "bot" and await self._park(reply, err):
                return Outcome.PARKED
            await self._give_up(reply, err, max(attempts, 1))
            return Outcome.DEAD_LETTERED
        metrics.MESSAGES_PROCESSED.labels(STAGE).inc()
        metrics.STAGE_LATENCY.labels(STAGE).observe(time.perf_counter() - started)
        return outcome

    async def _attempt(self, reply: Reply) -> Outcome:
        claimed = await deliveries.claim(self.pool, reply, self.settings.dispatch_lease_s)
        if claimed.claim is Claim.DONE:
            metrics.DUPLICATES.labels(STAGE).inc()
            return Outcome.DUPLICATE
        if claimed.claim is Claim.BUSY:
            raise ClaimedElsewhere(claimed.wait_s)
        try:
            async with self.slots(reply.channel):
                # Bounded by the lease: past it another worker may take the reply over.
                async with asyncio.timeout(self.settings.dispatch_lease_s):
                    provider_id = await self.send(reply)
        except ProviderUnavailable as err:
            if not _retryable(err):
                raise
            metrics.DISPATCH_SENDS.labels(reply.channel.value, "retry").inc()
            await deliveries.release(self.pool, reply.reply_id, f"{type(err).__name__}: {err}")
            raise
        await db.record_sent(self.pool, reply, DeliveryStatus.SENT, provider_id)
        metrics.DISPATCH_SENDS.labels(reply.channel.value, "sent").inc()
        metrics.RESPONSE_TIME.observe((utc_now() - reply.received_at).total_seconds())
        await self.publish_receipt(
            DeliveryReceipt(
                **reply.lineage(),
                reply_id=reply.reply_id,
                status=DeliveryStatus.SENT,
                provider_message_id=provider_id,
            )
        )
        return Outcome.SENT

    async def _park(self, reply: Reply, error: BaseException) -> bool:
        """Leave the customer's message open in the inbound log so the whole reply is
        re-driven once the provider is back; False when the message is not in the log."""
        reason = f"{type(error).__name__}: {error}"
        metrics.DISPATCH_SENDS.labels(reply.channel.value, "parked").inc()
        try:
            await deliveries.release(self.pool, reply.reply_id, reason)
            return await inbound_log.park(
                self.pool, reply.in_reply_to, STAGE, reason, self.settings.dispatch_park_retry_s
            )
        except Exception as err:  # Postgres is down too: the log re-drives it regardless
            log.warning(
                "could not park a reply", extra={"reply_id": reply.reply_id, "error": repr(err)}
            )
            return True

    async def _give_up(self, reply: Reply, error: BaseException, attempts: int) -> None:
        reason = _reason(error)
        metrics.DISPATCH_SENDS.labels(reply.channel.value, "dead_lettered").inc()
        log.warning(
            "reply not delivered",
            extra={"reply_id": reply.reply_id, "channel": reply.channel.value, "reason": reason},
        )
        # Each step on its own: a failing one must not keep the others from running.
        for step in (
            lambda: deliveries.mark_failed(self.pool, reply.reply_id, reason),
            lambda: self.dead_letter(reply, error, attempts),
            lambda: inbound_log.settle(self.pool, reply.in_reply_to, _settled_as(error)),
            lambda: self.publish_receipt(
                DeliveryReceipt(
                    **reply.lineage(),
                    reply_id=reply.reply_id,
                    status=DeliveryStatus.FAILED,
                    detail=reason[:500],
                )
            ),
        ):
            try:
                await step()
            except Exception:
                log.exception("recording an undelivered reply failed")


def _settled_as(error: BaseException) -> inbound_log.Outcome:
    """An unknown outcome may have reached the customer; anything else never will."""
    if (isinstance(error, ProviderUnavailable) and error.maybe_delivered) or isinstance(
        error, TimeoutError
    ):
        return inbound_log.Outcome.UNKNOWN
    return inbound_log.Outcome.DEAD_LETTERED


def _reason(error: BaseException) -> str:
    if (isinstance(error, ProviderUnavailable) and error.maybe_delivered) or isinstance(
        error, TimeoutError
    ):
        return f"outcome unknown, not resent to avoid a duplicate: {error}"[:2000]
    if isinstance(error, NotSendable):
        return str(error)[:2000]
    if isinstance(error, DeliveryError):
        return f"refused by the provider: {error}"[:2000]
    return f"{type(error).__name__}: {error}"[:2000]
