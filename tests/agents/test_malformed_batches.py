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


async def test_nlu_batch_model_failure_is_logged_then_retried_per_event(
    fake_services: Any, caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    from agents import guard, nlu
    async def broken_predict(tenant_id: str, texts: list[str]) -> Any:
        raise RuntimeError("model not loaded")

    processed: list[bytes] = []

    async def process(stage: str, raw: bytes, work: Any) -> bool:
        processed.append(raw)
        return False

    monkeypatch.setattr(nlu, "predict", broken_predict)
    monkeypatch.setattr(guard, "process", process)
    raw = _accepted_bytes()
    await nlu.classify_batch([raw])
    assert processed == [raw], "the event still goes through the guard"
    assert "batch classification failed" in caplog.text


def _accepted_bytes() -> bytes:
    from schemas import AcceptedMessage, Channel, ConversationSnapshot, InboundMessage

    msg = InboundMessage(
        conversation_id="c1",
        tenant_id="demo",
        channel=Channel.WEB,
        channel_message_id="m1",
        customer_id="u1",
        text="where is my order?",
    )
    accepted = AcceptedMessage(**msg.lineage(), message=msg, memory=ConversationSnapshot())
    return accepted.to_bytes()
