"""The diff compares decisions message by message and summarises what changed."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from clawdesk.replay.diff import compare, normalise
from clawdesk.replay.report import render_html


def row(mid: str, conv: str = "c1", **changes: Any) -> dict[str, Any]:
    base = {
        "message_id": mid,
        "conversation_id": conv,
        "tenant_id": "demo",
        "channel": "telegram",
        "received_at": datetime(2026, 12, 2, tzinfo=UTC),
        "language": "en",
        "intent": "shipping_info",
        "confidence": 0.97,
        "answerable": True,
        "top_doc_id": "en/shipping.md",
        "skill": None,
        "skill_args": {},
        "handoff": False,
        "reply_text": "Standard delivery takes 5-8 days.",
        "outcome": "kb_answer",
        "would_run": False,
    }
    return {**base, **changes}


def test_only_the_messages_that_differ_are_changes() -> None:
    production = {m: row(m) for m in ("m1", "m2", "m3")}
    production["m4"] = row(
        "m4",
        "c2",
        intent="refund",
        skill="refund",
        outcome="skill_resolved",
        skill_args={"order": "1002"},
        reply_text="Done: refunded.",
    )
    candidate = dict(production)
    candidate["m2"] = row(
        "m2",
        intent="oos",
        confidence=0.5,
        answerable=False,
        top_doc_id=None,
        reply_text="Could you rephrase?",
        outcome="clarify",
    )
    candidate["m3"] = row("m3", reply_text="Standard   delivery takes 5-8 days. ")  # spacing only
    candidate["m4"] = {**production["m4"], "would_run": True, "reply_text": "[replay] would"}
    report = compare(production, candidate, ["m1", "m2", "m3", "m4"], {"m2": "how long?"})
    assert [d.message_id for d in report.changed] == ["m2"]
    assert report.changed[0].changed == ["intent", "answerable", "top_doc_id", "reply"]
    assert report.changed[0].text == "how long?"
    assert report.reply_not_comparable == 1
    assert report.by_intent["shipping_info"].changed == 1
    assert report.by_intent["shipping_info"].messages == 3
    assert report.confusion[("shipping_info", "oos")] == 1
    assert report.outcomes["answered"] == [3, 2] and report.outcomes["clarify"] == [0, 1]
    assert (report.conversations, report.changed_conversations) == (2, 1)


def test_a_message_one_side_never_decided_is_a_change() -> None:
    report = compare({"m1": row("m1")}, {}, ["m1"])
    assert report.changed[0].candidate["intent"] == "(none)"
    assert report.outcomes["(none)"] == [0, 1]


def test_reports_as_json_and_html() -> None:
    production = {"m1": row("m1"), "m2": row("m2", "c2")}
    candidate = {"m1": row("m1", intent="oos"), "m2": row("m2", "c2")}
    report = compare(production, candidate, ["m1", "m2"], {"m1": "<where> & when"})
    data = report.to_json()
    assert data["changed"] == 1 and data["changed_rate"] == 0.5
    assert data["by_channel"]["telegram"] == {"messages": 2, "changed": 1, "rate": 0.5}
    assert [c["message_id"] for c in data["changes"]] == ["m1"]
    page = render_html(report)
    assert "1 of 2 messages changed" in page
    assert "&lt;where&gt; &amp; when" in page, "customer text is escaped"


def test_reply_text_is_compared_normalised() -> None:
    assert normalise("Ｈｅｌｌｏ\n  world ") == "Hello world"
