"""Cases and runs built in memory for the scoring and report tests."""

from __future__ import annotations

from pathlib import Path

from clawdesk.conversations.scenarios import Case, Expect, Scenario
from clawdesk.conversations.scoring import ScenarioRun, TurnOutcome, TurnResult, score_turn


def case(name: str, language: str = "en", tags: tuple[str, ...] = ()) -> Case:
    scenario = Scenario.model_validate(
        {"name": name, "language": language, "tags": list(tags), "turns": [{"say": "hi"}]}
    )
    return Case(scenario, "demo", Path("demo.yaml"), 3)


def turn(expect: Expect, outcome: TurnOutcome, index: int = 0) -> TurnResult:
    return TurnResult(index, outcome, score_turn(expect, outcome), scored=True)


def run(c: Case, number: int, *passed: bool) -> ScenarioRun:
    """A run whose turns pass or fail as given (a failing turn expects a greeting)."""
    turns = [
        turn(
            Expect(intent=["greeting"]),
            TurnOutcome(
                text="hi",
                reply="Hello!",
                intent="greeting" if ok else "oos",
                latency_s=0.1 * (i + 1),
            ),
            i,
        )
        for i, ok in enumerate(passed)
    ]
    return ScenarioRun(c, number, f"conv-{c.scenario.name}-{number}", turns)
