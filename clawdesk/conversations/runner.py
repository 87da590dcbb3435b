"""Drive scenarios through the real pipeline: one conversation per scenario run, one
customer turn at a time, each waiting for its reply; what the bot did is read from the
replies, skill-results and handoffs topics.

A turn without expectations (the first messages of a burst) is sent without waiting,
as a customer typing several short messages in a row does.
"""

from __future__ import annotations

import asyncio
import hashlib
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from pydantic import ValidationError

from clawdesk.bench.harness import Harness, Received
from clawdesk.conversations.scenarios import Case, ScenarioTurn
from clawdesk.conversations.scoring import ScenarioRun, TurnOutcome, TurnResult, score_turn
from schemas import Channel, Handoff, InboundMessage, Reply, SkillResult, SkillStatus, new_id
from topics import handoff_spec, inbound_spec, reply_spec, skill_result_spec

POLL_S = 0.05
# A skill result is produced before its reply, but our follower of its topic may lag
# the replies follower by a fetch or two.
SKILL_RESULT_GRACE_S = 2.0
ARG_FIELDS = ("order", "tracking_number", "email")


@dataclass(frozen=True)
class RunOptions:
    """How the runs are driven."""

    k: int = 1
    concurrency: int = 8
    turn_timeout_s: float = 30.0
    quiet_s: float = 5.0  # how long `no_reply: true` waits for a reply that must not come
    warmup_timeout_s: float = 300.0  # a first worker start trains the demo NLU model


class Outcomes:
    """Indexes the followed topics by the customer message each record answers."""

    def __init__(
        self, replies: list[Received], results: list[Received], handoffs: list[Received]
    ) -> None:
        self._sources = {"replies": replies, "results": results, "handoffs": handoffs}
        self._read = dict.fromkeys(self._sources, 0)
        self.replies: dict[str, tuple[Reply, float]] = {}
        self.results: dict[str, SkillResult] = {}
        self.handoffs: set[str] = set()

    def drain(self) -> None:
        """Index the records that arrived since the last call."""
        for name, records in self._sources.items():
            new, self._read[name] = records[self._read[name] :], len(records)
            for record in new:
                try:
                    self._index(name, record)
                except ValidationError:
                    continue  # another writer's record on a shared topic: not ours

    def _index(self, name: str, record: Received) -> None:
        if name == "replies":
            reply = Reply.from_bytes(record.value)
            if reply.author == "bot":
                self.replies.setdefault(reply.in_reply_to, (reply, record.seen_at))
        elif name == "results":
            result = SkillResult.from_bytes(record.value)
            self.results.setdefault(result.context.nlu.accepted.message.event_id, result)
        else:
            self.handoffs.add(Handoff.from_bytes(record.value).event_id)

    async def wait(self, predicate: Callable[[], bool], timeout: float) -> bool:
        """Wait until `predicate()` holds (True) or the timeout passes (False)."""
        deadline = time.monotonic() + timeout
        while True:
            self.drain()
            if predicate():
                return True
            if time.monotonic() >= deadline:
                return False
            await asyncio.sleep(POLL_S)


def handoff_event_id(inbound_event_id: str) -> str:
    """The id of the handoff a message causes (as `agents.skills.handoff_event_id` derives
    it; not imported from there, which would load the whole Faust app)."""
    return "h-" + hashlib.sha256(inbound_event_id.encode()).hexdigest()[:32]


def skill_args(result: SkillResult | None) -> dict[str, str]:
    """The skill's arguments: a confirmation question carries them whole; other results
    carry the order, parcel and e-mail they were run for among their facts (inside
    `after` when the result led to a handoff)."""
    if result is None:
        return {}
    data: dict[str, Any] = result.data
    if isinstance(data.get("after"), dict):
        data = data["after"]
    if isinstance(data.get("arguments"), dict):
        return {k: str(v) for k, v in data["arguments"].items()}
    return {k: str(data[k]) for k in ARG_FIELDS if data.get(k) is not None}


def outcome_of(text: str, event_id: str, sent_at: float, outcomes: Outcomes) -> TurnOutcome:
    """What the topics say the pipeline did with the message `event_id`."""
    result = outcomes.results.get(event_id)
    ran = (
        result is not None and result.skill is not None and result.status is not SkillStatus.SKIPPED
    )
    handoff = handoff_event_id(event_id) in outcomes.handoffs or (
        result is not None and result.skill == "handoff"
    )
    answered = outcomes.replies.get(event_id)
    if answered is None:
        return TurnOutcome(
            text=text,
            handoff=handoff,
            skill=result.skill if ran and result else None,
            skill_status=result.status.value if result else None,
            args=skill_args(result),
        )
    reply, seen_at = answered
    return TurnOutcome(
        text=text,
        reply=reply.text,
        language=reply.language,
        intent=reply.intent,
        confidence=reply.confidence,
        sources=tuple(reply.sources),
        handoff=handoff or reply.handoff,
        skill=result.skill if ran and result else None,
        skill_status=result.status.value if result else None,
        args=skill_args(result),
        latency_s=max(0.0, seen_at - sent_at),
    )


def channel_identity(channel: Channel, key: str) -> tuple[str, dict[str, str]]:
    """A customer id and the metadata a connector of `channel` would attach, so the
    pipeline sees what it sees in production (only the send, after the replies topic,
    needs the provider's credentials)."""
    number = str(int(hashlib.sha256(key.encode()).hexdigest()[:10], 16))
    if channel is Channel.TELEGRAM:
        return number, {"telegram_chat_id": number}
    if channel is Channel.WHATSAPP:
        return number, {"whatsapp_wa_id": number, "whatsapp_phone_number_id": "eval"}
    if channel is Channel.WECHAT:
        return f"o{key[:27]}", {"wechat_openid": f"o{key[:27]}", "wechat_account": "gh_eval"}
    if channel is Channel.EMAIL:
        # The sender of an e-mail is a verified address: one that owns no demo order.
        return f"{key}@customers.invalid", {"email_subject": "Question"}
    return f"customer-{key}", {}


class Driver:
    """Plays scenario runs against one pipeline through a started Harness."""

    def __init__(self, harness: Harness, outcomes: Outcomes, options: RunOptions) -> None:
        self.harness = harness
        self.outcomes = outcomes
        self.options = options

    async def warm_up(self, tenant: str, alive: Callable[[], bool]) -> None:
        """Wait for the first reply: a fresh worker trains and loads its models first."""
        msg = await self.harness.ask("hi", f"eval-warmup-{new_id()[:8]}", tenant_id=tenant)
        answered = await self.outcomes.wait(
            lambda: msg.event_id in self.outcomes.replies or not alive(),
            self.options.warmup_timeout_s,
        )
        if not alive():
            raise RuntimeError("the worker stopped before it answered (see its log)")
        if not answered:
            limit = self.options.warmup_timeout_s
            raise TimeoutError(f"no reply to a warm-up message in {limit:.0f} s")

    async def play(self, case: Case, run: int) -> ScenarioRun:
        """Run one scenario once, as one fresh conversation."""
        key = new_id()[:16]
        conversation = f"eval-{case.scenario.name[:60]}-{run}-{key[:8]}"
        results: list[TurnResult] = []
        try:
            for index, turn in enumerate(case.scenario.turns):
                results.append(await self._turn(case, turn, index, run, conversation, key))
        except (OSError, RuntimeError, TimeoutError) as err:  # the broker went away
            return ScenarioRun(
                case, run, conversation, results, error=f"{type(err).__name__}: {err}"
            )
        return ScenarioRun(case, run, conversation, results)

    async def _turn(
        self, case: Case, turn: ScenarioTurn, index: int, run: int, conversation: str, key: str
    ) -> TurnResult:
        text = turn.text(run)
        customer, metadata = channel_identity(turn.channel, key)
        msg = InboundMessage(
            conversation_id=conversation,
            tenant_id=case.tenant,
            channel=turn.channel,
            channel_message_id=new_id(),
            customer_id=customer,
            text=text,
            metadata={**metadata, **turn.metadata},
        )
        sent_at = time.monotonic()
        await self.harness.send(inbound_spec, conversation, msg.to_bytes())
        expect = turn.expect
        if expect is None:
            return TurnResult(index, TurnOutcome(text=text), [], scored=False)
        await self._await_reply(msg.event_id, quiet=bool(expect.no_reply))
        outcome = outcome_of(text, msg.event_id, sent_at, self.outcomes)
        return TurnResult(index, outcome, score_turn(expect, outcome), scored=True)

    async def _await_reply(self, event_id: str, *, quiet: bool) -> None:
        timeout = self.options.quiet_s if quiet else self.options.turn_timeout_s
        replied = await self.outcomes.wait(lambda: event_id in self.outcomes.replies, timeout)
        if replied:
            await self.outcomes.wait(
                lambda: event_id in self.outcomes.results, SKILL_RESULT_GRACE_S
            )


async def run_cases(
    harness: Harness,
    cases: list[Case],
    options: RunOptions,
    on_done: Callable[[ScenarioRun], None] = lambda _: None,
    *,
    alive: Callable[[], bool] = lambda: True,
) -> list[ScenarioRun]:
    """Every case `options.k` times, at most `options.concurrency` conversations at once;
    the runs in case order (run 0 of each case first)."""
    outcomes = Outcomes(
        await harness.follow(reply_spec),
        await harness.follow(skill_result_spec),
        await harness.follow(handoff_spec),
    )
    driver = Driver(harness, outcomes, options)
    for tenant in sorted({c.tenant for c in cases}):
        await driver.warm_up(tenant, alive)
    gate = asyncio.Semaphore(options.concurrency)

    async def one(case: Case, run: int) -> ScenarioRun:
        async with gate:
            result = await driver.play(case, run)
        on_done(result)
        return result

    jobs = [one(case, run) for run in range(options.k) for case in cases]
    return list(await asyncio.gather(*jobs))
