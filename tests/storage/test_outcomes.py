"""Turn outcomes stored once as replies are sent, and the conversation outcomes and rates
read from them, against real Postgres."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta
from pathlib import Path

import psycopg
from prometheus_client import REGISTRY

from clawdesk.storage import db
from schemas import Channel, DeliveryStatus, Reply, TurnOutcome

DOCS = Path(__file__).resolve().parents[2] / "docs" / "outcomes.md"


def _now() -> datetime:
    """Now, at the call: the view compares with the database's clock, and a module-level
    time goes stale when the module's tests run late in a long session."""
    return datetime.now(UTC)


def reply(conversation: str, reply_id: str, outcome: TurnOutcome | None, **fields) -> Reply:
    return Reply(
        conversation_id=conversation,
        tenant_id="demo",
        channel=Channel.WEB,
        reply_id=reply_id,
        in_reply_to=f"m-{reply_id}",
        customer_id="u1",
        text="Standard delivery takes 5-8 business days.",
        language="en",
        intent="shipping_info",
        confidence=0.9,
        received_at=_now(),
        outcome=outcome,
        **fields,
    )


def counted(outcome: str, language: str = "en") -> float:
    labels = {"tenant": "demo", "language": language, "outcome": outcome}
    return REGISTRY.get_sample_value("clawdesk_turn_outcomes_total", labels) or 0.0


def conversation(
    conn: psycopg.Connection, conv: str, *, quiet_for: timedelta = timedelta()
) -> None:
    at = _now() - quiet_for
    conn.execute(
        "INSERT INTO conversations (id, tenant_id, channel, customer_id, language, created_at,"
        " updated_at) VALUES (%s, 'demo', 'web', 'u1', 'en', %s, %s)",
        (conv, at, at),
    )


def turns(conn: psycopg.Connection, conv: str, outcomes: list[str], *, at: datetime) -> None:
    for n, outcome in enumerate(outcomes):
        conn.execute(
            "INSERT INTO turn_outcomes (reply_id, conversation_id, tenant_id, channel, language,"
            " intent, outcome, created_at) VALUES (%s, %s, 'demo', 'web', 'en', 'x', %s, %s)",
            (f"{conv}-r{n}", conv, outcome, at - timedelta(minutes=len(outcomes) - n)),
        )


async def test_a_sent_bot_reply_stores_its_outcome_once_and_counts_it_once(
    database_url: str,
) -> None:
    before = counted("kb_answer")
    sent = reply("c1", "r-1", TurnOutcome.KB_ANSWER, llm=True)
    pool = await db.open_pool(database_url)
    try:
        await db.record_sent(pool, sent, DeliveryStatus.SENT, "p1")
        await db.record_sent(pool, sent, DeliveryStatus.DELIVERED, "p1")  # a later status
        await db.record_sent(pool, reply("c1", "r-2", None), DeliveryStatus.SENT, "p2")
        await db.record_sent(
            pool, reply("c1", "r-3", TurnOutcome.CLARIFY), DeliveryStatus.QUEUED, None
        )
    finally:
        await pool.close()
    with psycopg.connect(database_url) as conn:
        rows = conn.execute(
            "SELECT reply_id, conversation_id, tenant_id, channel, language, intent, outcome, llm"
            " FROM turn_outcomes"
        ).fetchall()
    # No outcome (an old event) and not sent yet (queued) store none.
    assert rows == [("r-1", "c1", "demo", "web", "en", "shipping_info", "kb_answer", True)]
    assert counted("kb_answer") == before + 1


def test_each_conversation_gets_its_outcome(database_url: str) -> None:
    cases = {
        "handoff": (["kb_answer", "handoff"], timedelta()),
        "kb": (["clarify", "kb_answer"], timedelta()),
        "thanks": (["skill_resolved", "small_talk"], timedelta()),
        "hello": (["small_talk"], timedelta()),
        "loop": (["kb_answer", "clarify", "clarify"], timedelta(hours=2)),
        "gone": (["skill_pending"], timedelta(hours=1)),
        "waiting": (["skill_pending"], timedelta(minutes=5)),
        "silent": ([], timedelta()),
    }
    with psycopg.connect(database_url) as conn:
        for conv, (outcomes, quiet) in cases.items():
            conversation(conn, conv, quiet_for=quiet)
            turns(conn, conv, outcomes, at=_now() - quiet)
        found = dict(
            conn.execute("SELECT conversation_id, outcome FROM conversation_outcomes").fetchall()
        )
        loop = conn.execute(
            "SELECT turns, clarify_turns, last_outcome, human_involved FROM conversation_outcomes"
            " WHERE conversation_id = 'loop'"
        ).fetchone()
    assert found == {
        "handoff": "handed_off",
        "kb": "resolved",
        "thanks": "resolved",
        "hello": "open",  # small talk alone resolves nothing
        "loop": "clarify_loop",
        "gone": "abandoned",
        "waiting": "open",  # quiet for less than 30 minutes
        "silent": "open",
    }
    assert loop == (3, 2, "clarify", False)


def documented_rates_query() -> str:
    """The SQL block of docs/outcomes.md, as operators copy it."""
    blocks = re.findall(r"```sql\n(.*?)```", DOCS.read_text(encoding="utf-8"), flags=re.S)
    assert len(blocks) == 1
    return blocks[0]


def test_the_documented_rates_follow_fins_definition(database_url: str) -> None:
    with psycopg.connect(database_url) as conn:
        # Four conversations: the bot resolves one alone, one with a human's help, hands one
        # off; the fourth never reached the bot.
        for conv, outcomes in (
            ("alone", ["clarify", "kb_answer"]),
            ("helped", ["kb_answer"]),
            ("handed", ["handoff"]),
            ("human", []),
        ):
            conversation(conn, conv)
            turns(conn, conv, outcomes, at=_now())
        conn.execute(
            "INSERT INTO messages (id, conversation_id, tenant_id, user_id, direction, author,"
            " channel, text, \"timestamp\") VALUES ('a1', 'helped', 'demo', 'u1', 'out', 'agent',"
            " 'web', 'Let me check.', now())"
        )
        conn.execute(
            "INSERT INTO reply_feedback (reply_id, conversation_id, tenant_id, helpful)"
            " VALUES ('alone-r1', 'alone', 'demo', true), ('helped-r0', 'helped', 'demo', false),"
            " ('handed-r0', 'handed', 'demo', false)"
        )
        cur = conn.execute(documented_rates_query())
        names = [c.name for c in cur.description or []]
        rows = [dict(zip(names, row, strict=True)) for row in cur.fetchall()]
    assert len(rows) == 1
    rates = rows[0]
    assert (rates["tenant_id"], rates["language"], rates["conversations"]) == ("demo", "en", 4)
    assert float(rates["involvement_rate"]) == 0.75
    assert float(rates["resolution_rate"]) == 1 / 3
    assert float(rates["automation_rate"]) == 0.25  # = involvement × resolution
    assert float(rates["handoff_rate"]) == 1 / 3
    assert rates["clarification_rate"] == 0.25  # one clarify among four bot turns
    assert rates["helpful_share"] == 1 / 3
