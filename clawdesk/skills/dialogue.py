"""What the skills stage does with one message: pure decisions over the NLU result and
the conversation's dialogue state (kept in conversation memory).

The skill is chosen from the NLU intent — never from words in the message — and its
arguments from the entities and remembered slots, as the skills' manifests declare
(`SkillManifest.routes`, gathered into a `routing.Routes` table by the skills worker
and passed in). For the built-in skills:

| intent | skill | arguments |
|---|---|---|
| order_status | order_status; order_list if no order is named (verified e-mail) | order |
| track_shipment | track_shipment | tracking number, else order |
| refund_request | refund (side effect) | order, e-mail |
| cancel_order | cancel_order (side effect) | order, e-mail |
| return_request, an order named | create_ticket | the message |
| human_agent | hand off | — |

A side-effecting skill first returns NEEDS_CONFIRMATION; the action is kept as
*pending* and runs only when the next message is a plain "yes" (`answers.yes_or_no`),
with the idempotency key of the event that asked for it. A missing order number or
e-mail is asked for and the skill resumes when the next message supplies it.

Handoff: the customer asks for a human; the customer sounds upset (`sentiment`);
`unclear_limit` unclear messages in a row (out of scope and not answerable from the
knowledge base); `failure_limit` failed skill runs in a row (failed, unavailable,
refused); or a skill says so (`data["handoff"]`).
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from clawdesk.kb.answerability import is_same_question
from clawdesk.nlu.entities import order_number
from clawdesk.nlu.labels import OOS
from clawdesk.skills.answers import yes_or_no
from clawdesk.skills.manifest import Route
from clawdesk.skills.routing import Routes
from clawdesk.skills.sentiment import is_negative
from schemas import RetrievalContext, SkillStatus

# NLU intents a bare order or parcel number continues when no earlier request does.
ORDER_INTENT = "order_status"
PARCEL_INTENT = "track_shipment"
ORDER_ENTITY = "order_number"
MAX_TEXT = 10_000  # a message quoted into an argument is cut here
FAILURES = frozenset({SkillStatus.FAILED, SkillStatus.UNAVAILABLE, SkillStatus.REFUSED})
LONE_NUMBER = re.compile(r"(?<![\w.])#?(\d{3,12})(?![\w.])")
SHORT_MESSAGE = 6  # words
BARE_ORDER = re.compile(r"^\s*(?:#|no\.?\s*|ord-?)?\s*(\d{3,12})\s*[.!?。]?\s*$", re.I)
_REASON = re.compile(r"[^a-z0-9_]+")


class _State(BaseModel):
    model_config = ConfigDict(frozen=True, extra="ignore")


class PendingAction(_State):
    """A side-effecting action the customer was asked to confirm."""

    skill: str
    args: dict[str, Any]
    origin_event_id: str = Field(description="the message that led to the question")
    asked_at: datetime
    facts: dict[str, Any] = Field(default_factory=dict, description="what the question quoted")


class DoneAction(_State):
    """The last confirmed action: a redelivered "yes" replays it (same key)."""

    skill: str
    args: dict[str, Any]
    origin_event_id: str
    confirmed_by: str


class Awaiting(_State):
    """A skill waiting for an argument the customer was asked for."""

    skill: str
    intent: str
    args: dict[str, Any]
    missing: str  # "order" | "email"


class DialogueState(_State):
    """The skills stage's part of conversation memory."""

    pending: PendingAction | None = None
    awaiting: Awaiting | None = None
    last_action: DoneAction | None = None
    unclear: int = 0
    failures: int = 0
    last_event_id: str | None = None
    topic: str | None = Field(
        default=None,
        description="the intent of the last skill asked for: a bare order "
        "number next ('sorry, I meant 1005') continues it",
    )

    @classmethod
    def load(cls, raw: dict[str, Any] | None) -> DialogueState:
        """From its JSON form in memory (empty or unreadable: a fresh state)."""
        try:
            return cls.model_validate(raw or {})
        except ValueError:
            return cls()  # an older, incompatible shape: start the dialogue afresh

    def dump(self) -> dict[str, Any]:
        """The JSON form kept in memory."""
        return self.model_dump(mode="json")


@dataclass(frozen=True)
class Turn:
    """The facts of one message the decisions rest on."""

    event_id: str
    text: str
    intent: str
    at: datetime
    entities: dict[str, str] = field(default_factory=dict)  # kind -> first value
    slots: dict[str, str] = field(default_factory=dict)  # memory, this message's included
    answerable: bool = False
    verified_email: str | None = None
    decided_by: str = "model"  # how the nlu stage chose the intent (see NluResult)
    kb_match: bool = False  # the KB holds this very question (an FAQ entry matches it)

    @property
    def names_its_object(self) -> bool:
        """Whether the message says which order it is about: by number, or as an action
        on the remembered order ("refund it"), as the nlu stage resolved it."""
        return "order_number" in self.entities or self.decided_by == "action"


def turn_of(context: RetrievalContext, slots: dict[str, str], verified_email: str | None) -> Turn:
    """The facts of the message in `context`; `slots` as remembered with its entities."""
    nlu = context.nlu
    msg = nlu.accepted.message
    entities: dict[str, str] = {}
    for entity in nlu.entities:
        entities.setdefault(entity.kind, entity.value)
    return Turn(
        # The inbound event's id and time: the same on every redelivery of this message.
        event_id=msg.event_id,
        text=msg.text,
        intent=nlu.intent,
        at=msg.received_at,
        entities=entities,
        slots=dict(slots),
        answerable=context.answerable,
        verified_email=verified_email,
        decided_by=nlu.decided_by,
        kb_match=bool(context.hits) and is_same_question(context.hits[0]),
    )


@dataclass(frozen=True)
class Policy:
    """Limits of the dialogue (from settings)."""

    confirm_ttl_s: float = 900.0
    unclear_limit: int = 2
    failure_limit: int = 2


@dataclass(frozen=True)
class Decision:
    """Run `skill` with `args`, or report `status`/`data` without running anything;
    and/or hand off for `handoff`. `state` is the dialogue state after the decision."""

    state: DialogueState
    skill: str | None = None
    args: dict[str, Any] = field(default_factory=dict)
    run: bool = False
    confirmed: bool = False
    key_event_id: str | None = None
    status: SkillStatus = SkillStatus.SKIPPED
    data: dict[str, Any] = field(default_factory=dict)
    handoff: str | None = None


@dataclass(frozen=True)
class Conclusion:
    """What the stage reports for the message, and the state it keeps."""

    state: DialogueState
    skill: str | None
    status: SkillStatus
    data: dict[str, Any]
    message: str = ""
    handoff: str | None = None


# -- deciding ------------------------------------------------------------------------


def decide(turn: Turn, state: DialogueState, policy: Policy, routes: Routes) -> Decision:
    """What to do with this message, given the conversation so far and the skills'
    routes."""
    done = state.last_action
    if done is not None and done.confirmed_by == turn.event_id:
        # This "yes" was handled before (a redelivery): the same key replays its result.
        return _run(state, done.skill, done.args, confirmed=True, key=done.origin_event_id)
    if state.pending is not None:
        answered = _answer_pending(turn, state.pending, replace_state(state, pending=None), policy)
        if answered is not None:
            return answered
        state = replace_state(state, pending=None)  # any other message: the question lapses
    if routes.hands_off(turn.intent):
        return handoff(state, "customer_request")
    if is_negative(turn.text):
        return handoff(state, "negative_sentiment")
    awaiting, state = state.awaiting, replace_state(state, awaiting=None)
    if awaiting is not None and (resumed := _resume(turn, awaiting, state, routes)) is not None:
        return resumed
    turn = _continued(turn, state, routes)
    planned = _plan(turn, state, routes)
    if planned is not None:
        return planned
    return _unplanned(turn, state, policy)


def _answer_pending(
    turn: Turn, pending: PendingAction, state: DialogueState, policy: Policy
) -> Decision | None:
    answer = yes_or_no(turn.text)
    if answer is None:
        return None
    facts = {**pending.facts, "skill": pending.skill}
    if answer == "no":
        return Decision(state, pending.skill, data={"dialogue": "declined", **facts})
    if turn.at - pending.asked_at > timedelta(seconds=policy.confirm_ttl_s):
        return Decision(state, pending.skill, data={"dialogue": "expired", **facts})
    done = DoneAction(
        skill=pending.skill,
        args=pending.args,
        origin_event_id=pending.origin_event_id,
        confirmed_by=turn.event_id,
    )
    return _run(
        replace_state(state, last_action=done),
        pending.skill,
        pending.args,
        confirmed=True,
        key=pending.origin_event_id,
    )


def _plan(turn: Turn, state: DialogueState, routes: Routes) -> Decision | None:
    """The skill for the intent, with what the message and memory give as arguments."""
    main = routes.main(turn.intent)
    if main is None:
        return None
    skill, route = main.skill, main.route
    named = _fill(route, turn.entities)
    filled = {**_fill(route, turn.slots, only=route.remembered), **named}
    alternatives = routes.alternatives(turn.intent)
    if not filled and turn.verified_email and alternatives:
        # "Where are my orders?" from a customer the channel vouches for.
        return _run(state, alternatives[0].skill, {})
    for kind in route.decisive:
        if kind in turn.entities:
            return _run(state, skill, {route.entities.get(kind, kind): turn.entities[kind]})
    if turn.kb_match and not turn.names_its_object:
        # "Is there a discount on my first order?" is an FAQ entry, not an order lookup.
        return None
    if routes.has_side_effects(skill) and not turn.names_its_object and turn.answerable:
        # "How long does a refund take?" is a question for the knowledge base, even
        # when an order was mentioned earlier; naming the order makes it a request.
        return None
    if route.named_only:
        return _run(state, skill, _written(route, named, turn)) if named else None
    state = replace_state(state, topic=turn.intent)
    return _complete(turn, state, skill, route, filled)


def _fill(route: Route, values: dict[str, str], *, only: list[str] | None = None) -> dict[str, Any]:
    """The arguments the route's entities fill from `values` (entity kind -> value)."""
    args: dict[str, Any] = {}
    for kind, argument in route.entities.items():
        if only is not None and kind not in only:
            continue
        value = _number(values.get(kind)) if kind == ORDER_ENTITY else values.get(kind)
        if value:
            args[argument] = value
    return args


def _written(route: Route, filled: dict[str, Any], turn: Turn) -> dict[str, Any]:
    """The route's written arguments, or the filled ones when it writes none."""
    if not route.arguments:
        return filled
    values = {**filled, "text": turn.text[:MAX_TEXT]}
    return {name: template.format(**values) for name, template in route.arguments.items()}


def _complete(
    turn: Turn, state: DialogueState, skill: str, route: Route, args: dict[str, Any]
) -> Decision:
    """Run the skill if it has what it needs, else ask for the first missing thing."""
    if route.ask and not any(a in args for a in route.entities.values()):
        return _ask(turn, state, skill, args, route.ask)
    verify = route.verify_with
    if verify and not turn.verified_email:
        value = args.get(verify) or turn.slots.get(verify)
        if not value:
            return _ask(turn, state, skill, args, verify)
        args = {**args, verify: value}
    return _run(state, skill, args)


def _ask(
    turn: Turn, state: DialogueState, skill: str, args: dict[str, Any], missing: str
) -> Decision:
    awaiting = Awaiting(skill=skill, intent=turn.intent, args=args, missing=missing)
    data = {"missing": missing, **_order_fact(args)}
    return Decision(
        replace_state(state, awaiting=awaiting), skill, status=SkillStatus.NEEDS_INPUT, data=data
    )


def _resume(
    turn: Turn, awaiting: Awaiting, state: DialogueState, routes: Routes
) -> Decision | None:
    """The awaited skill, if this message gives what it was waiting for; the question
    again if it only says "yes"; nothing more if it says "no"."""
    route = _route_of(routes, awaiting)
    kind = next((k for k, a in route.entities.items() if a == awaiting.missing), awaiting.missing)
    if kind == ORDER_ENTITY:
        value = _number(turn.entities.get(kind)) or _bare_order(turn.text)
    else:
        value = turn.entities.get(kind)
    if not value:
        answer = yes_or_no(turn.text)
        if answer == "yes":  # "yes" to "which order?": say again what is needed
            return _ask(
                replace(turn, intent=awaiting.intent),
                state,
                awaiting.skill,
                awaiting.args,
                awaiting.missing,
            )
        if answer == "no":
            data = {"dialogue": "declined", **_order_fact(awaiting.args)}
            return Decision(state, awaiting.skill, data=data)
        return None
    if _asks_another_action(turn, awaiting, routes):
        return None
    intent_turn = replace(turn, intent=awaiting.intent)
    args = {**awaiting.args, awaiting.missing: value}
    return _complete(intent_turn, state, awaiting.skill, route, args)


def _route_of(routes: Routes, awaiting: Awaiting) -> Route:
    """The route the awaited skill was chosen by (a bare one if it is gone)."""
    for candidate in routes.by_intent.get(awaiting.intent, ()):
        if candidate.skill == awaiting.skill:
            return candidate.route
    return Route(intent=awaiting.intent)


def _asks_another_action(turn: Turn, awaiting: Awaiting, routes: Routes) -> bool:
    # "cancel order 1005 instead" while a refund waits for its e-mail is a new request;
    # a bare answer, whatever the model made of it, is the one awaited.
    return (
        routes.routes(turn.intent)
        and turn.intent != awaiting.intent
        and turn.decided_by == "action"
    )


def _order_fact(args: dict[str, Any]) -> dict[str, Any]:
    return {"order": f"#{args['order']}"} if "order" in args else {}


def _continued(turn: Turn, state: DialogueState, routes: Routes) -> Turn:
    """A message that names an order or parcel and nothing else the model could place
    ("sorry, I meant 1005", "SF1512345678901"): it continues the request the last skill
    was asked for, else it asks for that order's (or parcel's) status."""
    if turn.intent != OOS or turn.answerable:
        return turn
    if "tracking_number" in turn.entities:
        return replace(turn, intent=PARCEL_INTENT)
    entities = turn.entities
    if "order_number" not in entities:
        # "sorry, I meant 1005": a lone number in a short message, once an order skill
        # was asked for, is the order it meant.
        number = _lone_number(turn.text) if routes.routes(state.topic) else None
        if number is None:
            return turn
        entities = {**entities, "order_number": number}
    topic = state.topic if state.topic is not None and routes.routes(state.topic) else ORDER_INTENT
    return replace(turn, intent=topic, entities=entities)


def _lone_number(text: str) -> str | None:
    numbers = LONE_NUMBER.findall(text)
    return numbers[0] if len(numbers) == 1 and len(text.split()) <= SHORT_MESSAGE else None


def _number(reference: str | None) -> str | None:
    # "ORD-1003", "#1003", "1003" are one order: the skills and the cache key use digits.
    return (order_number(reference) or reference) if reference else None


def _bare_order(text: str) -> str | None:
    # Only a message that is nothing but a number, as an answer to "which order?".
    match = BARE_ORDER.match(text)
    return match.group(1) if match else None


def _unplanned(turn: Turn, state: DialogueState, policy: Policy) -> Decision:
    """No skill: the knowledge base or small talk answers, or the message was unclear."""
    if turn.intent != OOS or turn.answerable:
        return Decision(replace_state(state, unclear=0))
    redelivered = state.last_event_id == turn.event_id
    unclear = state.unclear if redelivered else state.unclear + 1
    if unclear >= policy.unclear_limit:
        return handoff(state, "low_confidence")
    return Decision(replace_state(state, unclear=unclear))


def _run(
    state: DialogueState,
    skill: str,
    args: dict[str, Any],
    *,
    confirmed: bool = False,
    key: str | None = None,
) -> Decision:
    return Decision(state, skill, args, run=True, confirmed=confirmed, key_event_id=key)


def handoff(state: DialogueState, reason: str) -> Decision:
    """Hand the conversation to a person; the dialogue starts afresh when it comes back."""
    fresh = DialogueState(last_action=state.last_action, last_event_id=state.last_event_id)
    return Decision(fresh, "handoff", handoff=reason)


def replace_state(state: DialogueState, **changes: Any) -> DialogueState:
    """A copy of the state with some fields changed."""
    return state.model_copy(update=changes)


# -- concluding ----------------------------------------------------------------------


def conclude(
    turn: Turn,
    decision: Decision,
    policy: Policy,
    outcome_status: SkillStatus | None = None,
    outcome_data: dict[str, Any] | None = None,
    outcome_message: str = "",
) -> Conclusion:
    """The result to report and the state to keep, after the skill (if any) ran."""
    state = decision.state
    if decision.handoff is not None:
        return _handed_off(turn, state, decision.handoff, {})
    if not decision.run or outcome_status is None:
        state = replace_state(state, failures=0, last_event_id=turn.event_id)
        return Conclusion(state, decision.skill, decision.status, decision.data)
    data = dict(outcome_data or {})
    state = _after_outcome(turn, decision, state, outcome_status, data)
    redelivered = decision.state.last_event_id == turn.event_id
    failed = outcome_status in FAILURES
    failures = 0 if not failed else state.failures + (0 if redelivered else 1)
    state = replace_state(state, failures=failures, unclear=0, last_event_id=turn.event_id)
    after = {"skill": decision.skill, "status": outcome_status.value, **data}
    if data.get("handoff"):
        return _handed_off(turn, state, _reason(str(data["handoff"])), after)
    if failures >= policy.failure_limit:
        return _handed_off(turn, state, "skill_failure", after)
    return Conclusion(state, decision.skill, outcome_status, data, outcome_message)


def _after_outcome(
    turn: Turn,
    decision: Decision,
    state: DialogueState,
    status: SkillStatus,
    data: dict[str, Any],
) -> DialogueState:
    """Remember a question the outcome asks: confirm the action, or give what is missing."""
    assert decision.skill is not None
    if status is SkillStatus.NEEDS_CONFIRMATION:
        facts = {k: v for k, v in data.items() if k != "arguments"}
        pending = PendingAction(
            skill=decision.skill,
            args=decision.args,
            origin_event_id=turn.event_id,
            asked_at=turn.at,
            facts=facts,
        )
        return replace_state(state, pending=pending)
    if status is SkillStatus.NEEDS_INPUT and data.get("missing") in ("order", "email"):
        awaiting = Awaiting(
            skill=decision.skill, intent=turn.intent, args=decision.args, missing=data["missing"]
        )
        return replace_state(state, awaiting=awaiting)
    return state


def _handed_off(turn: Turn, state: DialogueState, reason: str, after: dict[str, Any]) -> Conclusion:
    fresh = DialogueState(last_action=state.last_action, last_event_id=turn.event_id)
    data = {"reason": reason, **({"after": after} if after else {})}
    return Conclusion(fresh, "handoff", SkillStatus.OK, data, handoff=reason)


def _reason(value: str) -> str:
    # A skill's handoff reason becomes a metric label: keep it short and plain.
    return _REASON.sub("_", value.lower()).strip("_")[:40] or "skill_decision"
