"""Scoring one turn against its expectations, and aggregating runs into pass^k."""

from __future__ import annotations

import pytest

from clawdesk.conversations.scenarios import Expect
from clawdesk.conversations.scoring import Failure, TurnOutcome, score_turn, summarize
from tests.conversations.helpers import case, run

ORDER_REPLY = "Order #1002: payment paid, shipped with YunExpress, in transit."


def outcome(**changes: object) -> TurnOutcome:
    base: dict[str, object] = {
        "text": "What's the status of order #1002?",
        "reply": ORDER_REPLY,
        "language": "en",
        "intent": "order_status",
        "confidence": 0.97,
        "sources": ("order:#1002",),
        "skill": "order_status",
        "skill_status": "ok",
        "args": {"order": "#1002"},
        "latency_s": 0.4,
    }
    return TurnOutcome(**{**base, **changes})  # type: ignore[arg-type]


def checks(expect: dict[str, object], result: TurnOutcome) -> list[str]:
    return [f.check for f in score_turn(Expect.model_validate(expect), result)]


def test_a_turn_that_meets_every_expectation_passes() -> None:
    expect = {
        "intent": ["order_status", "track_shipment"],
        "skill": "order_status",
        "args": {"order": "1002"},  # "#1002" is the same order
        "confirmation": False,
        "handoff": False,
        "language": "en",
        "contains_any": ["SHIPPED", "DHL"],
        "contains": ["1002", "yunexpress"],
        "not_contains": ["No."],
        "sources": True,  # the order the skill read is the reply's source
    }
    assert checks(expect, outcome()) == []


def test_each_unmet_expectation_is_reported_with_expected_and_actual() -> None:
    expect = Expect.model_validate(
        {
            "intent": "refund_request",
            "skill": "none",
            "args": {"order": "1003"},
            "confirmation": True,
            "handoff": True,
            "language": "zh",
            "contains_any": ["退款"],
            "contains": ["1002", "1003"],
            "not_contains": ["in transit"],
            "sources": False,
        }
    )
    assert score_turn(expect, outcome()) == [
        Failure("intent", "refund_request", "order_status"),
        Failure("skill", "none", "order_status"),
        Failure("args", "order=1003", "order=#1002"),
        Failure("confirmation", "true", "false"),
        Failure("handoff", "true", "false"),
        Failure("language", "zh", "en"),
        Failure("contains_any", "退款", "none of them"),
        Failure("contains", "1002 & 1003", "missing ['1003']"),
        Failure("not_contains", "none of ['in transit']", "has ['in transit']"),
        Failure("sources", "False", "order:#1002"),
    ]


def test_skill_none_means_no_skill_ran() -> None:
    assert checks({"skill": "none"}, outcome(skill=None, skill_status="skipped")) == []
    assert checks({"skill": "none"}, outcome()) == ["skill"]


def test_a_confirmation_is_a_needs_confirmation_result() -> None:
    asked = outcome(skill="refund", skill_status="needs_confirmation")
    assert checks({"confirmation": True, "skill": "refund"}, asked) == []
    assert checks({"confirmation": True}, outcome()) == ["confirmation"]


def test_named_sources_must_each_appear_among_the_sources() -> None:
    kb = outcome(sources=("en/shipping.md", "order:#1002"))
    assert checks({"sources": ["shipping.md", "order:#1002"]}, kb) == []
    assert checks({"sources": True}, kb) == []
    assert checks({"sources": ["returns.md"]}, kb) == ["sources"]
    assert checks({"sources": False}, outcome(sources=())) == []


def test_a_missing_reply_fails_unless_none_was_expected() -> None:
    silent = outcome(reply=None, intent=None, language=None, latency_s=None)
    assert score_turn(Expect(intent=["order_status"]), silent) == [
        Failure("reply", "a reply", "no reply in time")
    ]
    assert score_turn(Expect(no_reply=True), silent) == []
    assert checks({"no_reply": True}, outcome()) == ["no_reply"]
    assert checks({"no_reply": False}, silent) == ["reply"]


@pytest.mark.parametrize("args", [{"order": "ORD-1002"}, {"order": "#1002"}, {}])
def test_expected_args_are_a_subset_of_the_actual_ones(args: dict[str, str]) -> None:
    actual = outcome(args={"order": "1002", "email": "Mike@Example.com"})
    assert checks({"args": {**args, "email": "mike@example.com"}}, actual) == []


def test_pass_k_counts_a_scenario_only_if_every_run_passed() -> None:
    steady, flaky, broken = (
        case("steady", "en", ("kb",)),
        case("flaky", "zh", ("kb",)),
        case("broken", "zh"),
    )
    runs = [
        run(steady, 0, True, True),
        run(steady, 1, True, True),
        run(flaky, 0, True, True),
        run(flaky, 1, True, False),
        run(broken, 0, False),
        run(broken, 1, False),
    ]
    summary = summarize(runs, k=2)
    o = summary.overall
    assert (o.scenarios, o.runs.passed, o.runs.total) == (3, 3, 6)
    assert (o.turns.passed, o.turns.total) == (7, 10)
    assert (o.pass_k.passed, o.pass_k.total) == (1, 3)
    zh = summary.by_language["zh"]
    assert (zh.scenarios, zh.runs.passed, zh.pass_k.passed) == (2, 1, 0)
    assert summary.by_language["en"].pass_k.rate == 1.0
    assert (summary.by_tag["kb"].pass_k.passed, summary.by_tag["kb"].pass_k.total) == (1, 2)
    assert [(r.case.scenario.name, r.run) for r in summary.failing] == [
        ("flaky", 1),
        ("broken", 0),
        ("broken", 1),
    ]
    assert summary.latency_p50_s == pytest.approx(0.1)
    assert summary.latency_p99_s == pytest.approx(0.2, abs=0.01)


def test_a_run_that_could_not_finish_fails() -> None:
    from dataclasses import replace

    errored = replace(run(case("cut"), 0, True), error="TimeoutError: broker")
    assert not errored.passed
    assert summarize([errored], k=1).overall.pass_k.passed == 0
