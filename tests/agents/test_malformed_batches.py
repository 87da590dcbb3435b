"""A malformed event in a batched stage is dead-lettered, and when even that fails the
batch still returns: nothing escapes the agent's loop."""

from __future__ import annotations

from types import SimpleNamespace
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


async def test_nlu_batch_model_failure_is_logged_then_retried_per_event(
    fake_services: Any, caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    from agents import guard, nlu
    from clawdesk.nlu import IntentPrediction

    calls: list[list[str]] = []

    async def predict(tenant_id: str, texts: list[str]) -> Any:
        calls.append(list(texts))
        if len(texts) > 1:
            raise RuntimeError("the batch call failed")
        return "v1", [IntentPrediction("order_status", 0.9, [("order_status", 0.9)])]

    emitted: list[Any] = []
    dead: list[str] = []

    async def emit(result: Any) -> None:
        emitted.append(result)

    async def dead_letter(stage: str, raw: bytes, error: BaseException, attempts: int) -> None:
        dead.append(repr(error))

    fake_services.nlu = SimpleNamespace(
        min_confidence_for=lambda tenant_id: 0.9, intents=lambda tenant_id: ["order_status"]
    )
    monkeypatch.setattr(nlu, "predict", predict)
    monkeypatch.setattr(nlu, "emit", emit)
    monkeypatch.setattr(guard, "dead_letter", dead_letter)
    first, second = (_accepted_bytes(f"m{i}", text) for i, text in enumerate(TEXTS))
    await nlu.classify_batch([first, second])

    assert "batch classification failed" in caplog.text
    assert dead == []
    assert calls == [list(TEXTS), [TEXTS[0]], [TEXTS[1]]], "then each event on its own"
    assert [r.accepted.message.text for r in emitted] == list(TEXTS)
    assert {r.intent for r in emitted} == {"order_status"}


TEXTS = ("where is my order?", "has my parcel shipped?")


def _accepted_bytes(message_id: str, text: str) -> bytes:
    from tests.llm.events import skill_result

    return skill_result(text, message_id=message_id).context.nlu.accepted.to_bytes()
