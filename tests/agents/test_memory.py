"""Conversation memory: bounded turns, idempotent per event, slots from entities."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from agents.memory import remember_slots, remember_turn, snapshot, with_handoff
from schemas import Entity

NOW = datetime(2026, 11, 24, tzinfo=UTC)


def test_turns_are_trimmed_to_the_limit():
    memory = None
    for i in range(15):
        memory = remember_turn(memory, "customer", f"m{i}", NOW, f"e{i}", 10)
    assert [t["text"] for t in memory["turns"]] == [f"m{i}" for i in range(5, 15)]


def test_the_same_event_is_remembered_once():
    memory = remember_turn(None, "customer", "hi", NOW, "e1", 10)
    again = remember_turn(memory, "customer", "hi", NOW, "e1", 10)
    assert len(again["turns"]) == 1


def test_a_late_turn_in_time_order_goes_before_the_later_ones():
    memory = remember_turn(None, "customer", "refund?", NOW, "e1", 10)
    memory = remember_turn(memory, "customer", "thanks!", NOW + timedelta(seconds=9), "e3", 10)
    late = NOW + timedelta(seconds=4)  # sent before "thanks!", applied after it
    placed = remember_turn(memory, "agent", "done", late, "a1", 10, in_time_order=True)
    appended = remember_turn(memory, "agent", "done", late, "a1", 10)
    assert [t["text"] for t in placed["turns"]] == ["refund?", "done", "thanks!"]
    assert [t["text"] for t in appended["turns"]] == ["refund?", "thanks!", "done"]
    # A naive time reads as UTC (not an error): 00:00:05 falls between the two turns.
    naive_at = datetime(2026, 11, 24, 0, 0, 5)
    naive = remember_turn(memory, "agent", "x", naive_at, "a2", 10, in_time_order=True)
    assert [t["text"] for t in naive["turns"]] == ["refund?", "x", "thanks!"]


def test_order_number_slot_is_kept_and_latest_wins():
    memory = remember_slots(None, [Entity(kind="order_number", value="#1001")], "en")
    memory = remember_slots(memory, [Entity(kind="email", value="a@b.co")], None)
    memory = remember_slots(memory, [Entity(kind="order_number", value="#1002")], None)
    snap = snapshot(memory)
    assert snap.slots == {"order_number": "#1002", "email": "a@b.co"}
    assert snap.language == "en"


def test_handoff_flag_round_trips():
    assert snapshot(with_handoff(None, True)).handoff
    assert not snapshot(with_handoff(with_handoff(None, True), False)).handoff
