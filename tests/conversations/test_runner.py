"""Reading a turn's outcome from the topics' records (no broker needed)."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from clawdesk.bench.harness import Received
from clawdesk.conversations.runner import (
    Outcomes,
    channel_identity,
    handoff_event_id,
    outcome_of,
    skill_args,
)
from schemas import (
    AcceptedMessage,
    Channel,
    ConversationSnapshot,
    Handoff,
    InboundMessage,
    NluResult,
    Reply,
    RetrievalContext,
    SkillResult,
    SkillStatus,
)


def inbound(text: str = "Please refund order #1002") -> InboundMessage:
    return InboundMessage(
        conversation_id="c1",
        tenant_id="demo",
        channel=Channel.WEB,
        channel_message_id="m1",
        customer_id="u1",
        text=text,
    )


def result(
    msg: InboundMessage, skill: str | None, status: SkillStatus, data: dict[str, object]
) -> SkillResult:
    accepted = AcceptedMessage(**msg.lineage(), message=msg, memory=ConversationSnapshot())
    nlu = NluResult(
        **msg.lineage(),
        accepted=accepted,
        intent="refund_request",
        confidence=0.95,
        language="en",
        model_version="v1",
    )
    context = RetrievalContext(**msg.lineage(), nlu=nlu, answerable=False, kb_version="k")
    return SkillResult(**msg.lineage(), context=context, skill=skill, status=status, data=data)


def reply(msg: InboundMessage, text: str, **changes: object) -> Reply:
    fields: dict[str, object] = {
        "reply_id": "r1",
        "in_reply_to": msg.event_id,
        "customer_id": "u1",
        "text": text,
        "language": "en",
        "intent": "refund_request",
        "confidence": 0.95,
        "received_at": datetime.now(UTC),
        **changes,
    }
    return Reply(**msg.lineage(), **fields)  # type: ignore[arg-type]


def record(value: bytes, seen_at: float = 10.0) -> Received:
    return Received(b"c1", value, 0, seen_at)


def test_the_handoff_id_is_the_skills_stages(monkeypatch: pytest.MonkeyPatch) -> None:
    # agents.skills builds the Faust app on import, which wants a broker address.
    monkeypatch.setenv("KAFKA_BOOTSTRAP_SERVERS", "127.0.0.1:9")
    from agents.skills import handoff_event_id as stage_handoff_event_id

    assert handoff_event_id("abc") == stage_handoff_event_id("abc")


def test_a_confirmation_question_carries_the_skill_arguments() -> None:
    msg = inbound()
    asked = result(
        msg,
        "refund",
        SkillStatus.NEEDS_CONFIRMATION,
        {"order": "#1002", "arguments": {"order": "1002", "email": "m@x.com"}},
    )
    assert skill_args(asked) == {"order": "1002", "email": "m@x.com"}
    ran = result(msg, "order_status", SkillStatus.OK, {"order": "#1002", "status": "shipped"})
    assert skill_args(ran) == {"order": "#1002"}
    handed = result(msg, "handoff", SkillStatus.OK, {"reason": "x", "after": {"order": "#1002"}})
    assert skill_args(handed) == {"order": "#1002"}


def test_the_outcome_joins_reply_skill_result_and_handoff_by_the_message_id() -> None:
    msg, other = inbound(), inbound("hi")
    replies = [
        record(reply(other, "Hello").to_bytes()),
        record(reply(msg, "Shall I refund 313.90 USD?", sources=["order:#1002"]).to_bytes(), 12.5),
    ]
    results = [
        record(
            result(
                msg, "refund", SkillStatus.NEEDS_CONFIRMATION, {"arguments": {"order": "1002"}}
            ).to_bytes()
        )
    ]
    handoffs = [
        record(
            Handoff(
                **msg.lineage(),
                event_id=handoff_event_id(msg.event_id),
                reason="r",
                customer_id="u1",
                last_message="x",
            ).to_bytes()
        )
    ]
    outcomes = Outcomes(replies, results, handoffs)
    outcomes.drain()
    got = outcome_of(msg.text, msg.event_id, 10.0, outcomes)
    assert got.reply == "Shall I refund 313.90 USD?" and got.latency_s == 2.5
    assert (got.skill, got.confirmation, got.args, got.handoff) == (
        "refund",
        True,
        {"order": "1002"},
        True,
    )
    assert got.sources == ("order:#1002",)


def test_a_skipped_skill_did_not_run_and_a_missing_reply_is_none() -> None:
    msg = inbound("no")
    outcomes = Outcomes(
        [],
        [record(result(msg, "refund", SkillStatus.SKIPPED, {"dialogue": "declined"}).to_bytes())],
        [],
    )
    outcomes.drain()
    got = outcome_of(msg.text, msg.event_id, 0.0, outcomes)
    assert got.reply is None and got.skill is None and got.skill_status == "skipped"


def test_records_that_are_not_events_of_the_topic_are_skipped() -> None:
    outcomes = Outcomes([record(b"{}")], [], [])
    outcomes.drain()
    assert outcomes.replies == {}


def test_channel_identities_look_like_the_connectors() -> None:
    customer, meta = channel_identity(Channel.TELEGRAM, "abc123")
    assert customer.isdigit() and meta == {"telegram_chat_id": customer}
    assert channel_identity(Channel.EMAIL, "abc")[0] == "abc@customers.invalid"
    assert channel_identity(Channel.WEB, "abc") == ("customer-abc", {})
