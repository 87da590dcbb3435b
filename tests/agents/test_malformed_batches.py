"""A malformed event in a batched stage is dead-lettered, and when even that fails the
batch still returns: nothing escapes the agent's loop."""

from __future__ import annotations

from typing import Any

import pytest


class DeadLetterDown(OSError):
    """The dead-letter topic cannot be reached."""


@pytest.fixture()
def failing_dead_letter(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """Make every dead letter fail, recording the stages that tried."""
    from agents import guard

    tried: list[str] = []

    async def dead_letter(stage: str, raw: bytes, error: BaseException, attempts: int) -> None:
        tried.append(stage)
        raise DeadLetterDown("broker unreachable")

    monkeypatch.setattr(guard, "dead_letter", dead_letter)
    return tried


async def test_nlu_batch_survives_a_failed_dead_letter(
    fake_services: Any, failing_dead_letter: list[str]
) -> None:
    from agents.nlu import classify_batch

    await classify_batch([b"{not json"])
    assert failing_dead_letter == ["nlu"]


async def test_retrieve_batch_survives_a_failed_dead_letter(
    fake_services: Any, failing_dead_letter: list[str]
) -> None:
    from agents.retrieve import retrieve_batch

    await retrieve_batch([b"{not json"])
    assert failing_dead_letter == ["retrieve"]
