"""Scoring: one turn's outcome against its expectations (a pure function), and the
figures of a whole run (scenarios, turns, pass^k, per language and tag, latencies)."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field

import numpy as np

from clawdesk.conversations.scenarios import Case, Expect

NO_SKILL = "none"


@dataclass(frozen=True)
class TurnOutcome:
    """What the pipeline did with one customer message, as read from its topics."""

    text: str
    reply: str | None = None  # None: no reply came in time
    language: str | None = None
    intent: str | None = None
    confidence: float | None = None
    sources: tuple[str, ...] = ()
    handoff: bool = False  # the reply, the skill result or a handoff event says so
    skill: str | None = None  # the skill that ran (None: none ran)
    skill_status: str | None = None
    args: dict[str, str] = field(default_factory=dict)
    latency_s: float | None = None

    @property
    def confirmation(self) -> bool:
        """The bot asked the customer to confirm a side effect."""
        return self.skill_status == "needs_confirmation"


@dataclass(frozen=True)
class Failure:
    """One expectation a turn did not meet."""

    check: str
    expected: str
    actual: str


def score_turn(expect: Expect, outcome: TurnOutcome) -> list[Failure]:
    """Every expectation of `expect` that `outcome` does not meet (empty: the turn passed)."""
    if expect.no_reply:
        if outcome.reply is None:
            return []
        return [Failure("no_reply", "no reply", "a reply")]
    if outcome.reply is None:
        return [Failure("reply", "a reply", "no reply in time")]
    checks = [
        _one_of("intent", expect.intent, outcome.intent),
        _one_of("skill", expect.skill, outcome.skill or NO_SKILL),
        _args(expect.args, outcome.args),
        _flag("confirmation", expect.confirmation, outcome.confirmation),
        _flag("handoff", expect.handoff, outcome.handoff),
        _one_of("language", [expect.language] if expect.language else None, outcome.language),
        *_texts(expect, outcome.reply),
        _sources(expect.sources, list(outcome.sources)),
    ]
    return [c for c in checks if c is not None]


def _one_of(check: str, allowed: list[str] | None, actual: str | None) -> Failure | None:
    if allowed is None or actual in allowed:
        return None
    return Failure(check, " | ".join(allowed), str(actual))


def _flag(check: str, expected: bool | None, actual: bool) -> Failure | None:
    if expected is None or expected == actual:
        return None
    return Failure(check, str(expected).lower(), str(actual).lower())


def _args(expected: dict[str, str] | None, actual: dict[str, str]) -> Failure | None:
    if not expected:
        return None
    wrong = {k: v for k, v in expected.items() if _arg(k, actual.get(k)) != _arg(k, v)}
    if not wrong:
        return None
    return Failure("args", _pairs(wrong), _pairs(actual) or "(none)")


def _arg(name: str, value: str | None) -> str | None:
    # "#1002", "ORD-1002" and "1002" name one order; e-mails compare case-insensitively.
    if value is None:
        return None
    value = value.strip().lower()
    return value.removeprefix("#").removeprefix("ord-") if name == "order" else value


def _pairs(values: dict[str, str]) -> str:
    return ", ".join(f"{k}={v}" for k, v in sorted(values.items()))


def _texts(expect: Expect, reply: str) -> list[Failure | None]:
    text = reply.casefold()
    out: list[Failure | None] = []
    if expect.contains_any and not any(s.casefold() in text for s in expect.contains_any):
        out.append(Failure("contains_any", " | ".join(expect.contains_any), "none of them"))
    missing = [s for s in expect.contains or [] if s.casefold() not in text]
    if missing:
        out.append(Failure("contains", " & ".join(expect.contains or []), f"missing {missing}"))
    present = [s for s in expect.not_contains or [] if s.casefold() in text]
    if present:
        out.append(Failure("not_contains", f"none of {expect.not_contains}", f"has {present}"))
    return out


def _sources(expected: bool | list[str] | None, actual: list[str]) -> Failure | None:
    # A KB document ("en/shipping.md") or a skill's record ("order:#1002") is a source.
    if expected is None:
        return None
    shown = ", ".join(actual) or "(none)"
    if isinstance(expected, bool):
        return None if expected == bool(actual) else Failure("sources", str(expected), shown)
    missing = [n for n in expected if not any(n.casefold() in s.casefold() for s in actual)]
    return Failure("sources", ", ".join(expected), shown) if missing else None


# -- results -------------------------------------------------------------------------


@dataclass(frozen=True)
class TurnResult:
    """One turn of one run: what happened and which expectations failed."""

    index: int
    outcome: TurnOutcome
    failures: list[Failure]
    scored: bool  # the turn had expectations (the first messages of a burst need none)

    @property
    def passed(self) -> bool:
        """No expectation failed."""
        return not self.failures


@dataclass(frozen=True)
class ScenarioRun:
    """One run of a scenario (run `run` says variant `run` of each turn)."""

    case: Case
    run: int
    conversation_id: str
    turns: list[TurnResult]
    error: str | None = None  # the run could not be completed (e.g. the broker went away)

    @property
    def passed(self) -> bool:
        """Every turn passed and the run completed."""
        return self.error is None and all(t.passed for t in self.turns)


@dataclass(frozen=True)
class Figure:
    """Passed out of total, for one slice of the scenarios."""

    passed: int
    total: int

    @property
    def rate(self) -> float:
        """The share passed (0 for an empty slice)."""
        return self.passed / self.total if self.total else 0.0

    def as_dict(self) -> dict[str, float | int]:
        """`{"passed", "total", "rate"}`."""
        return {"passed": self.passed, "total": self.total, "rate": round(self.rate, 4)}


@dataclass(frozen=True)
class Slice:
    """The figures of some scenarios: their runs, turns, and pass^k."""

    scenarios: int
    runs: Figure
    turns: Figure
    pass_k: Figure


@dataclass(frozen=True)
class Summary:
    """Every figure of an evaluation."""

    k: int
    overall: Slice
    by_language: dict[str, Slice]
    by_tag: dict[str, Slice]
    latency_p50_s: float | None
    latency_p99_s: float | None
    runs: list[ScenarioRun]

    @property
    def failing(self) -> list[ScenarioRun]:
        """The runs that did not pass, in file order."""
        return [r for r in self.runs if not r.passed]


def summarize(runs: list[ScenarioRun], k: int) -> Summary:
    """The figures of all runs (k per scenario); pass^k counts a scenario only if all
    of its runs passed."""
    languages = sorted({r.case.scenario.language for r in runs})
    tags = sorted({t for r in runs for t in r.case.scenario.tags})
    latencies = [t.outcome.latency_s for r in runs for t in r.turns if t.outcome.latency_s]
    p50, p99 = np.percentile(latencies, [50, 99]).tolist() if latencies else (None, None)
    return Summary(
        k=k,
        overall=slice_of(runs),
        by_language={
            lang: slice_of([r for r in runs if r.case.scenario.language == lang])
            for lang in languages
        },
        by_tag={tag: slice_of([r for r in runs if tag in r.case.scenario.tags]) for tag in tags},
        latency_p50_s=p50,
        latency_p99_s=p99,
        runs=runs,
    )


def slice_of(runs: Iterable[ScenarioRun]) -> Slice:
    """The figures of these runs, grouped by scenario for pass^k."""
    by_scenario: dict[str, list[ScenarioRun]] = {}
    for run in runs:
        by_scenario.setdefault(run.case.scenario.name, []).append(run)
    every = [r for rs in by_scenario.values() for r in rs]
    turns = [t for r in every for t in r.turns if t.scored]
    return Slice(
        scenarios=len(by_scenario),
        runs=Figure(sum(r.passed for r in every), len(every)),
        turns=Figure(sum(t.passed for t in turns), len(turns)),
        pass_k=Figure(
            sum(all(r.passed for r in rs) for rs in by_scenario.values()), len(by_scenario)
        ),
    )
