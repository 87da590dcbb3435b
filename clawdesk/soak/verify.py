"""The soak's verdict: what happened to every acknowledged message, read from Postgres
(inbound log, deliveries, stored replies, dead letters) and the fake providers' logs.

A reply counts as sent when its channel has it: for web and in-app the delivery row is
`sent` (or later) — in-app also by the app backend's log —, for Telegram and WhatsApp
the fake provider received it. Telegram carries no reply id, so its sends are matched
to the stored replies of the chat by text, in order.
"""

from __future__ import annotations

import itertools
import json
import math
from collections import defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass, field
from datetime import datetime
from typing import Any

import psycopg
from psycopg.rows import dict_row
from rich.console import Console
from rich.table import Table

from clawdesk.soak.driver import Acked
from clawdesk.soak.faults import FaultWindow
from clawdesk.soak.providers import REPEAT, ProviderSend

PROVIDER_CHANNELS = frozenset({"telegram", "whatsapp", "inapp"})
SHOWN = 10  # lost / duplicated messages listed in the table (all of them in --json)


@dataclass(frozen=True)
class LogRow:
    """One inbound-log row (one acknowledgement of a customer message)."""

    event_id: str
    conversation_id: str
    channel: str
    channel_message_id: str
    accepted_at: float
    outcome: str | None
    redrives: int
    parked_stage: str | None
    parked_reason: str | None
    parked_at: float | None


@dataclass
class Store:
    """What Postgres holds about the run."""

    log: list[LogRow]
    delivery_status: dict[str, str]  # reply_id → status
    sent_events: dict[str, list[float]]  # reply_id → times of its 'sent' events
    outbound: dict[str, list[tuple[str, str, float]]]  # reply_id → (conversation, text, ts)
    dead_letters: list[tuple[str, str]]  # (stage, error)


@dataclass
class MessageFate:
    """One acknowledged customer message and its reply."""

    channel: str
    conversation: int
    k: int
    channel_message_id: str
    conversation_id: str = ""
    accepted_at: float | None = None
    state: str = "lost"  # answered / human / lost
    replies: dict[str, int] = field(default_factory=dict)  # reply_id → provider sends
    sent_at: float | None = None
    outcomes: list[str] = field(default_factory=list)
    parked: bool = False
    parked_reason: str = ""

    @property
    def duplicated(self) -> bool:
        """Sent twice, or answered by two different replies."""
        answered = [n for n in self.replies.values() if n > 0]
        return len(answered) > 1 or any(n > 1 for n in answered)


@dataclass
class FaultFigures:
    """One fault and how fast the system came back from it."""

    name: str
    detail: str
    started: float
    ended: float | None
    affected: int  # messages in flight during it
    next_reply_s: float | None  # from its end (a kill: its time) to the next reply sent
    drained_s: float | None  # ... to the last reply of a message in flight during it


@dataclass
class SoakReport:
    """Every figure of the verdict (`--json` writes this)."""

    acknowledged: int
    answered_once: int
    human: int
    lost: int
    duplicated: int
    out_of_order: int
    parked_then_answered: int
    sent_not_recorded: int
    dead_letters: dict[str, int]
    per_channel: dict[str, dict[str, int]]
    latency_s: dict[str, dict[str, float | int | None]]
    faults: list[FaultFigures]
    lost_messages: list[dict[str, Any]]
    duplicated_messages: list[dict[str, Any]]
    drive: dict[str, Any] = field(default_factory=dict)
    # In-app callbacks sent again after a crash and dropped by their Idempotency-Key.
    repeats_dropped: int = 0

    @property
    def ok(self) -> bool:
        """No loss and no duplicate."""
        return self.lost == 0 and self.duplicated == 0

    def to_json(self) -> str:
        """The report as JSON."""
        return json.dumps(asdict(self), indent=2, ensure_ascii=False, default=str)


def _epoch(ts: datetime | None) -> float | None:
    return ts.timestamp() if ts is not None else None


def load_store(database_url: str) -> Store:
    """Read the run's rows from Postgres."""
    with psycopg.connect(database_url, row_factory=dict_row) as conn:
        log = [
            LogRow(
                r["event_id"],
                r["conversation_id"],
                r["channel"],
                r["cmid"] or "",
                r["accepted_at"].timestamp(),
                r["outcome"],
                r["redrives"],
                r["parked_stage"],
                r["parked_reason"],
                _epoch(r["parked_at"]),
            )
            for r in conn.execute(
                "SELECT event_id, conversation_id, channel, accepted_at, outcome, redrives,"
                " parked_stage, parked_reason, parked_at,"
                " convert_from(payload, 'UTF8')::jsonb ->> 'channel_message_id' AS cmid"
                " FROM inbound_log"
            )
        ]
        status = {
            r["reply_id"]: r["status"]
            for r in conn.execute("SELECT reply_id, status FROM deliveries")
        }
        sent_events: dict[str, list[float]] = defaultdict(list)
        for r in conn.execute(
            "SELECT reply_id, recorded_at FROM delivery_events WHERE status = 'sent' ORDER BY id"
        ):
            sent_events[r["reply_id"]].append(r["recorded_at"].timestamp())
        outbound: dict[str, list[tuple[str, str, float]]] = defaultdict(list)
        for r in conn.execute(
            'SELECT id, conversation_id, text, "timestamp" AS ts FROM messages'
            " WHERE direction = 'out' AND author = 'bot' ORDER BY \"timestamp\""
        ):
            outbound[r["id"]].append((r["conversation_id"], r["text"], r["ts"].timestamp()))
        dead = [
            (r["stage"], r["error"])
            for r in conn.execute("SELECT stage, error FROM dead_letters ORDER BY id")
        ]
    return Store(log, status, dict(sent_events), dict(outbound), dead)


@dataclass(frozen=True)
class Spare:
    """A Telegram send no fresh stored reply explains: a reply sent but never recorded
    (`again` None or not), or the reply `again` sent a second time."""

    chat: str
    at: float
    again: str | None  # the already-matched reply with the same text, if any


def match_telegram(
    store: Store, sends: Sequence[ProviderSend]
) -> tuple[dict[str, list[float]], list[Spare]]:
    """Telegram sends attributed to stored replies (reply_id → send time), and the
    sends left over. Each send goes to the chat's earliest unmatched reply with its text.
    Telegram carries no reply id, and a reply whose send timed out is not stored, so
    a left-over send is either that reply or a second send: `verify` decides."""
    by_chat: dict[str, list[tuple[float, str, str]]] = defaultdict(list)
    for reply_id, rows in store.outbound.items():
        for conversation_id, text, ts in rows[:1]:
            if conversation_id.startswith("telegram:"):
                by_chat[conversation_id.removeprefix("telegram:")].append((ts, reply_id, text))
    times: dict[str, list[float]] = {}
    spares: list[Spare] = []
    for send in sorted((s for s in sends if s.channel == "telegram" and s.delivered), key=_at):
        replies = sorted(by_chat.get(send.chat, []))
        fresh = next((r for _, r, t in replies if t == send.text and r not in times), None)
        if fresh is not None:
            times[fresh] = [send.at]
        else:
            again = next((r for _, r, t in replies if t == send.text), None)
            spares.append(Spare(send.chat, send.at, again))
    return times, spares


def _at(send: ProviderSend) -> float:
    return send.at


def fates(
    acked: Sequence[Acked], store: Store, sends: Sequence[ProviderSend]
) -> tuple[list[MessageFate], list[Spare]]:
    """Every acknowledged message's fate, and Telegram's left-over sends."""
    rows: dict[tuple[str, str], list[LogRow]] = defaultdict(list)
    for row in store.log:
        rows[(row.channel, row.channel_message_id)].append(row)
    by_reply: dict[str, list[float]] = defaultdict(list)
    for send in sends:
        if send.delivered and send.reply_id and send.channel != "telegram":
            by_reply[send.reply_id].append(send.at)
    telegram, spares = match_telegram(store, sends)
    out = []
    for ack in acked:
        fate = MessageFate(ack.channel, ack.conversation, ack.k, ack.channel_message_id)
        events = sorted(rows.get((ack.channel, ack.channel_message_id), []), key=_accepted)
        if not events:
            fate.outcomes = ["not in the inbound log"]
            out.append(fate)
            continue
        fate.conversation_id = events[0].conversation_id
        fate.accepted_at = events[0].accepted_at
        fate.outcomes = [e.outcome or "open" for e in events]
        fate.parked = any(e.parked_at is not None or e.redrives > 0 for e in events)
        fate.parked_reason = next((e.parked_reason for e in events if e.parked_reason), "") or ""
        sent_times: list[float] = []
        for event in events:
            reply_id = f"r-{event.event_id}"
            times = _sent_times(ack.channel, reply_id, store, by_reply, telegram)
            if times or reply_id in store.delivery_status:
                fate.replies[reply_id] = len(times)
            sent_times += times
        if sent_times:
            fate.state, fate.sent_at = "answered", min(sent_times)
        elif "human" in fate.outcomes:
            fate.state = "human"
        out.append(fate)
    return out, spares


def reconcile_telegram(messages: Sequence[MessageFate], spares: Sequence[Spare]) -> int:
    """Settle Telegram's left-over sends: each first answers an unanswered message of its
    chat (its reply reached the chat, only our record of it is missing), else it is a
    second send of the reply with its text (a duplicate); the number of left-over sends
    that are neither."""
    lost_by_chat: dict[str, list[MessageFate]] = defaultdict(list)
    by_reply: dict[str, MessageFate] = {}
    for m in messages:
        if m.channel != "telegram":
            continue
        if m.state == "lost":
            lost_by_chat[m.conversation_id.removeprefix("telegram:")].append(m)
        for reply_id in m.replies:
            by_reply[reply_id] = m
    unexplained = 0
    for spare in spares:
        waiting = lost_by_chat.get(spare.chat)
        if waiting:
            m = waiting.pop(0)
            m.state, m.sent_at = "answered", spare.at
            m.outcomes.append("sent, not recorded")
        elif spare.again is not None and spare.again in by_reply:
            by_reply[spare.again].replies[spare.again] += 1
        else:
            unexplained += 1
    return unexplained


def _accepted(row: LogRow) -> float:
    return row.accepted_at


def _sent_times(
    channel: str,
    reply_id: str,
    store: Store,
    by_reply: dict[str, list[float]],
    telegram: dict[str, list[float]],
) -> list[float]:
    """When the channel received the reply (one entry per send it received)."""
    if channel == "telegram":
        return telegram.get(reply_id, [])
    if channel in PROVIDER_CHANNELS:
        return by_reply.get(reply_id, [])
    # web: the reply is pushed from the gateway; its delivery row is the record (a
    # second 'sent' event or a second stored row would be a second send).
    events = store.sent_events.get(reply_id, [])
    stored = [ts for _, _, ts in store.outbound.get(reply_id, [])]
    return events if len(events) >= len(stored) else stored


def out_of_order(messages: Iterable[MessageFate]) -> int:
    """Replies sent before the reply to the conversation's previous answered message."""
    by_conversation: dict[int, list[MessageFate]] = defaultdict(list)
    for m in messages:
        if m.state == "answered" and m.sent_at is not None:  # not: sent, not recorded
            by_conversation[m.conversation].append(m)
    count = 0
    for answered in by_conversation.values():
        answered.sort(key=lambda m: m.k)
        for before, after in itertools.pairwise(answered):
            if after.sent_at < before.sent_at:  # type: ignore[operator]
                count += 1
    return count


def percentile(values: Sequence[float], q: float) -> float | None:
    """The q-th percentile (nearest rank), None for no values."""
    if not values:
        return None
    ordered = sorted(values)
    return ordered[max(0, math.ceil(q / 100 * len(ordered)) - 1)]


def _in_flight(m: MessageFate, window: FaultWindow, now: float) -> bool:
    if m.accepted_at is None:
        return False
    end = m.sent_at if m.sent_at is not None else now
    return m.accepted_at <= (window.ended or now) and end >= window.started


def fault_figures(
    messages: Sequence[MessageFate], windows: Sequence[FaultWindow], now: float
) -> list[FaultFigures]:
    """Recovery per fault: to the next reply on its path, and to its backlog's last reply."""
    out = []
    for w in windows:
        end = w.ended if w.ended is not None else now
        path = [
            m
            for m in messages
            if not w.name.startswith("provider-") or m.channel in PROVIDER_CHANNELS
        ]
        after = [m.sent_at for m in path if m.sent_at is not None and m.sent_at >= end]
        hit = [m for m in messages if _in_flight(m, w, now)]
        unanswered = any(m.state == "lost" for m in hit)
        last = max((m.sent_at for m in hit if m.sent_at is not None), default=None)
        drained = None if unanswered else max(0.0, last - end) if last is not None else 0.0
        out.append(
            FaultFigures(
                w.name,
                w.detail,
                w.started,
                w.ended,
                len(hit),
                min(after) - end if after else None,
                drained,
            )
        )
    return out


def verify(
    database_url: str,
    acked: Sequence[Acked],
    sends: Sequence[ProviderSend],
    windows: Sequence[FaultWindow],
    now: float,
) -> SoakReport:
    """The verdict on a run."""
    store = load_store(database_url)
    messages, spares = fates(acked, store, sends)
    unexplained = reconcile_telegram(messages, spares)
    lost = [m for m in messages if m.state == "lost"]
    duplicated = [m for m in messages if m.duplicated]
    per_channel: dict[str, dict[str, int]] = {}
    for m in messages:
        row = per_channel.setdefault(
            m.channel, {"acknowledged": 0, "answered": 0, "human": 0, "lost": 0, "duplicated": 0}
        )
        row["acknowledged"] += 1
        row[m.state] += 1
        row["duplicated"] += int(m.duplicated)
    dead: dict[str, int] = defaultdict(int)
    for stage, error in store.dead_letters:
        dead[f"{stage}: {error.splitlines()[0][:100] if error else ''}"] += 1
    return SoakReport(
        acknowledged=len(messages),
        answered_once=sum(1 for m in messages if m.state == "answered" and not m.duplicated),
        human=sum(1 for m in messages if m.state == "human"),
        lost=len(lost),
        duplicated=len(duplicated),
        out_of_order=out_of_order(messages),
        parked_then_answered=sum(1 for m in messages if m.state == "answered" and m.parked),
        sent_not_recorded=unexplained,
        dead_letters=dict(dead),
        per_channel=per_channel,
        latency_s=latencies(messages, windows, now),
        faults=fault_figures(messages, windows, now),
        lost_messages=[asdict(m) for m in lost],
        duplicated_messages=[asdict(m) for m in duplicated],
        repeats_dropped=sum(1 for s in sends if s.answer == REPEAT),
    )


def latencies(
    messages: Sequence[MessageFate], windows: Sequence[FaultWindow], now: float
) -> dict[str, dict[str, float | int | None]]:
    """Accepted → sent, p50/p99, for replies in flight during a fault and the others."""
    during: list[float] = []
    outside: list[float] = []
    for m in messages:
        if m.sent_at is None or m.accepted_at is None:
            continue
        faulted = any(_in_flight(m, w, now) for w in windows)
        (during if faulted else outside).append(m.sent_at - m.accepted_at)
    return {
        name: {"n": len(v), "p50": percentile(v, 50), "p99": percentile(v, 99)}
        for name, v in (("during faults", during), ("outside faults", outside))
    }


def _s(value: float | int | None) -> str:
    return "—" if value is None else f"{value:.1f} s"


def render(report: SoakReport, console: Console) -> None:
    """Print the verdict as tables."""
    table = Table(title="clawdesk soak")
    table.add_column("figure")
    table.add_column("value", justify="right")
    red = "[bold red]{}[/]"
    table.add_row("acknowledged", str(report.acknowledged))
    table.add_row("answered exactly once", str(report.answered_once))
    table.add_row("handed to a human (bot quiet by design)", str(report.human))
    table.add_row("lost", (red if report.lost else "{}").format(report.lost))
    table.add_row("duplicated", (red if report.duplicated else "{}").format(report.duplicated))
    table.add_row("out of order", str(report.out_of_order))
    table.add_row("parked or re-driven, then answered", str(report.parked_then_answered))
    table.add_row("Telegram sends no reply explains", str(report.sent_not_recorded))
    table.add_row("in-app repeats dropped by Idempotency-Key", str(report.repeats_dropped))
    table.add_row("dead letters", str(sum(report.dead_letters.values())))
    for name, figures in report.latency_s.items():
        table.add_row(
            f"reply latency p50 / p99, {name} (n={figures['n']})",
            f"{_s(figures['p50'])} / {_s(figures['p99'])}",
        )
    for key, value in sorted(report.drive.items()):
        if key == "started_at":
            continue
        if isinstance(value, dict):
            value = ", ".join(f"{k} {v}" for k, v in value.items()) or "none"
        table.add_row(f"driver: {key}", str(value))
    console.print(table)
    channels = Table(title="per channel")
    for column in ("channel", "acknowledged", "answered", "human", "lost", "duplicated"):
        channels.add_column(column, justify="left" if column == "channel" else "right")
    for channel, row in sorted(report.per_channel.items()):
        channels.add_row(
            channel,
            *(str(row[c]) for c in ("acknowledged", "answered", "human", "lost", "duplicated")),
        )
    console.print(channels)
    if report.faults:
        faults = Table(title="faults")
        for column in ("fault", "detail", "at (s)", "lasted", "in flight", "next reply", "drained"):
            faults.add_column(column, justify="left" if column in ("fault", "detail") else "right")
        t0 = report.drive.get("started_at", report.faults[0].started)
        for f in report.faults:
            lasted = f.ended - f.started if f.ended is not None else None
            faults.add_row(
                f.name,
                f.detail,
                f"{f.started - t0:.0f}",
                _s(lasted),
                str(f.affected),
                _s(f.next_reply_s),
                "[red]not drained[/]" if f.drained_s is None else _s(f.drained_s),
            )
        console.print(faults)
    if report.dead_letters:
        dead = Table(title="dead letters")
        dead.add_column("stage: reason")
        dead.add_column("n", justify="right")
        for reason, n in sorted(report.dead_letters.items(), key=lambda kv: -kv[1]):
            dead.add_row(reason, str(n))
        console.print(dead)
    for title, rows in (("lost", report.lost_messages), ("duplicated", report.duplicated_messages)):
        if rows:
            listing = Table(title=f"{title} (first {min(SHOWN, len(rows))} of {len(rows)})")
            for column in ("channel", "conversation", "k", "message id", "outcomes", "replies"):
                listing.add_column(column)
            for m in rows[:SHOWN]:
                listing.add_row(
                    m["channel"],
                    m["conversation_id"],
                    str(m["k"]),
                    m["channel_message_id"],
                    ", ".join(m["outcomes"])
                    + (f" ({m['parked_reason'][:60]})" if m["parked_reason"] else ""),
                    json.dumps(m["replies"]),
                )
            console.print(listing)
