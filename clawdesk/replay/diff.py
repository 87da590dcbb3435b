"""Compare two sets of decisions message by message: a run against production (or
another run). Pure functions over the rows of two `decisions` tables.

A message changed when any compared field differs: the intent, whether the KB answers
it, the top passage, the skill and its arguments, the handoff, or the reply text
(normalised: Unicode NFKC, whitespace collapsed). A side effect a shadow run held back
("would run") is compared by skill and arguments; its reply text is not comparable.
"""

from __future__ import annotations

import unicodedata
from collections import Counter, defaultdict
from dataclasses import asdict, dataclass, field
from typing import Any

import psycopg
from psycopg import sql
from psycopg.rows import dict_row

from clawdesk.replay import runs
from clawdesk.replay.source import messages

COMPARED = ("intent", "answerable", "top_doc_id", "skill", "skill_args", "handoff", "reply")
MISSING = "(none)"  # a message one side has no decision for
# Outcome rates side by side, grouped as a reader of the report thinks of them.
OUTCOME_GROUPS = {
    "kb_answer": "answered",
    "small_talk": "answered",
    "skill_resolved": "skill",
    "skill_pending": "skill",
    "skill_failed": "skill",
    "handoff": "handoff",
    "human": "handoff",
    "clarify": "clarify",
}

Row = dict[str, Any]


def normalise(text: str | None) -> str:
    """Reply text as compared: NFKC, whitespace collapsed, trimmed."""
    return " ".join(unicodedata.normalize("NFKC", text or "").split())


def load(url: str, schema: str | None, ids: list[str]) -> dict[str, Row]:
    """The decisions of these messages in a schema (None: production's), by message id."""
    table = sql.Identifier(schema, "decisions") if schema else sql.Identifier("decisions")
    query = sql.SQL("SELECT * FROM {} WHERE message_id = ANY(%s)").format(table)
    with psycopg.connect(url, row_factory=dict_row) as conn:
        rows = conn.execute(query, (ids,)).fetchall()
    return {r["message_id"]: r for r in rows}


def run_report(url: str, name: str, against: str = "production") -> Report:
    """Run `name` compared with production (or with run `against`) over the run's
    selected messages, in their order."""
    run = runs.get(url, name)
    ids = [m.event_id for m in messages(url, run.source)]
    if against == "production":
        baseline = load(url, None, ids)
    else:
        baseline = load(url, runs.get(url, against).schema_name, ids)
    candidate = load(url, run.schema_name, ids)
    return compare(baseline, candidate, ids, message_texts(url, ids), names=(against, name))


def message_texts(url: str, ids: list[str]) -> dict[str, str]:
    """The customer's text of each message (production's messages table)."""
    with psycopg.connect(url, row_factory=dict_row) as conn:
        rows = conn.execute("SELECT id, text FROM messages WHERE id = ANY(%s)", (ids,)).fetchall()
    return {r["id"]: r["text"] for r in rows}


def _fields(row: Row | None) -> dict[str, Any]:
    if row is None:
        return {f: MISSING for f in COMPARED} | {"outcome": MISSING, "would_run": False}
    return {
        "intent": row["intent"],
        "answerable": row["answerable"],
        "top_doc_id": row["top_doc_id"],
        "skill": row["skill"],
        "skill_args": row["skill_args"] or {},
        "handoff": row["handoff"],
        "reply": normalise(row["reply_text"]),
        "outcome": row["outcome"],
        "would_run": row["would_run"],
        "confidence": row["confidence"],
    }


@dataclass(frozen=True)
class MessageDiff:
    """One message that changed: what each side decided, and which fields differ."""

    message_id: str
    conversation_id: str
    tenant_id: str
    channel: str
    language: str
    text: str
    changed: list[str]
    base: dict[str, Any]
    candidate: dict[str, Any]


@dataclass
class Group:
    """Messages and changed messages of one intent, language or channel."""

    messages: int = 0
    changed: int = 0

    @property
    def rate(self) -> float:
        """Changed share, 0..1."""
        return self.changed / self.messages if self.messages else 0.0


@dataclass
class Report:
    """The comparison of a candidate's decisions with a baseline's."""

    baseline: str
    candidate: str
    messages: int = 0
    changed: list[MessageDiff] = field(default_factory=list)
    conversations: int = 0
    changed_conversations: int = 0
    by_field: Counter[str] = field(default_factory=Counter)
    by_intent: dict[str, Group] = field(default_factory=lambda: defaultdict(Group))
    by_language: dict[str, Group] = field(default_factory=lambda: defaultdict(Group))
    by_channel: dict[str, Group] = field(default_factory=lambda: defaultdict(Group))
    confusion: Counter[tuple[str, str]] = field(default_factory=Counter)
    outcomes: dict[str, list[int]] = field(default_factory=lambda: defaultdict(lambda: [0, 0]))
    reply_not_comparable: int = 0

    @property
    def changed_rate(self) -> float:
        """Share of messages with any change."""
        return len(self.changed) / self.messages if self.messages else 0.0

    def top(self, n: int) -> list[MessageDiff]:
        """The `n` messages that changed most (most fields, then largest confidence move)."""

        def weight(d: MessageDiff) -> tuple[int, float]:
            base, cand = d.base.get("confidence"), d.candidate.get("confidence")
            moved = abs(base - cand) if isinstance(base, float) and isinstance(cand, float) else 0
            return (len(d.changed), moved)

        return sorted(self.changed, key=weight, reverse=True)[:n]

    def to_json(self, top: int = 20) -> dict[str, Any]:
        """Machine-readable: the summary, the tables, and every changed message."""

        def groups(table: dict[str, Group]) -> dict[str, dict[str, float]]:
            return {
                k: {"messages": g.messages, "changed": g.changed, "rate": round(g.rate, 4)}
                for k, g in sorted(table.items())
            }

        return {
            "baseline": self.baseline,
            "candidate": self.candidate,
            "messages": self.messages,
            "changed": len(self.changed),
            "changed_rate": round(self.changed_rate, 4),
            "conversations": self.conversations,
            "changed_conversations": self.changed_conversations,
            "reply_not_comparable": self.reply_not_comparable,
            "by_field": dict(sorted(self.by_field.items())),
            "by_intent": groups(self.by_intent),
            "by_language": groups(self.by_language),
            "by_channel": groups(self.by_channel),
            "confusion": [
                {"baseline": b, "candidate": c, "count": n}
                for (b, c), n in sorted(self.confusion.items())
            ],
            "outcomes": {
                k: {"baseline": v[0], "candidate": v[1]} for k, v in self.outcomes.items()
            },
            "top": [asdict(d) for d in self.top(top)],
            "changes": [asdict(d) for d in self.changed],
        }


def compare(
    baseline: dict[str, Row],
    candidate: dict[str, Row],
    message_ids: list[str],
    texts: dict[str, str] | None = None,
    *,
    names: tuple[str, str] = ("production", "candidate"),
) -> Report:
    """Compare the two sides over `message_ids` (a side without a decision for a
    message counts as `(none)`)."""
    report = Report(*names)
    changed_conversations: set[str] = set()
    conversations: set[str] = set()
    for mid in message_ids:
        base_row, cand_row = baseline.get(mid), candidate.get(mid)
        either = base_row or cand_row
        if either is None:
            continue
        base, cand = _fields(base_row), _fields(cand_row)
        changed = [f for f in COMPARED if base[f] != cand[f]]
        if "reply" in changed and (base["would_run"] or cand["would_run"]):
            changed.remove("reply")  # a held-back side effect has no real reply to compare
            report.reply_not_comparable += 1
        report.messages += 1
        conv = either["conversation_id"]
        conversations.add(conv)
        language = str((base_row or either)["language"] or MISSING)
        for table, key in (
            (report.by_intent, str(base["intent"] or MISSING)),
            (report.by_language, language),
            (report.by_channel, str(either["channel"])),
        ):
            table[key].messages += 1
            table[key].changed += bool(changed)
        report.confusion[(str(base["intent"] or MISSING), str(cand["intent"] or MISSING))] += 1
        report.outcomes[OUTCOME_GROUPS.get(str(base["outcome"]), MISSING)][0] += 1
        report.outcomes[OUTCOME_GROUPS.get(str(cand["outcome"]), MISSING)][1] += 1
        if changed:
            changed_conversations.add(conv)
            report.by_field.update(changed)
            report.changed.append(
                MessageDiff(
                    mid,
                    conv,
                    str(either["tenant_id"]),
                    str(either["channel"]),
                    language,
                    (texts or {}).get(mid, ""),
                    changed,
                    {f: base[f] for f in (*COMPARED, "outcome", "confidence") if f in base},
                    {f: cand[f] for f in (*COMPARED, "outcome", "confidence") if f in cand},
                )
            )
    report.conversations = len(conversations)
    report.changed_conversations = len(changed_conversations)
    return report
