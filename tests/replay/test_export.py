"""`clawdesk export`: month-partitioned Parquet/CSV/JSON lines that DuckDB reads, with
personal data masked on request."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from pathlib import Path

import duckdb
import pytest
from psycopg_pool import AsyncConnectionPool
from typer.testing import CliRunner

from clawdesk.replay.export import Format, fetch, mask_text, write
from clawdesk.storage import db, decisions
from schemas import Channel, InboundMessage

NOV = datetime(2026, 11, 20, 9, 0, tzinfo=UTC)
DEC = datetime(2026, 12, 2, 9, 0, tzinfo=UTC)


@pytest.mark.parametrize(
    ("text", "kept", "gone"),
    [
        ("mail me at lena.vogel@example.com please", "mail me at <email:", "lena.vogel"),
        ("call +49 151 2345 6789 today", "call <phone:", "2345"),
        ("order #10023456 and tracking JD014600003828", "#10023456", "<phone"),
        ("where is order 1002?", "order 1002", "<phone"),
    ],
)
def test_masking_replaces_emails_and_phones_only(text: str, kept: str, gone: str) -> None:
    masked = mask_text(text)
    assert kept in masked
    assert gone not in masked


def test_a_value_masks_to_the_same_token_every_time() -> None:
    assert mask_text("a@b.example") == mask_text("A@B.example")
    assert mask_text("a@b.example") != mask_text("c@b.example")


@pytest.fixture()
async def stored(database_url: str) -> AsyncIterator[str]:
    pool: AsyncConnectionPool = await db.open_pool(database_url, max_size=2)
    for i, at in enumerate((NOV, DEC, DEC)):
        msg = InboundMessage(
            conversation_id=f"whatsapp:4915123456{i}",
            tenant_id="demo",
            channel=Channel.WHATSAPP,
            channel_message_id=f"wamid.{i}",
            customer_id=f"4915123456{i}",
            text=f"refund order #100{i}, my email is mike{i}@example.com",
            received_at=at,
        )
        await db.record_inbound(pool, msg)
        await decisions.record(pool, decisions.of_quiet(msg))
    await pool.close()
    yield database_url


async def test_decisions_export_is_parquet_by_month_and_duckdb_reads_it(
    stored: str, tmp_path: Path
) -> None:
    rows, column = fetch(stored, "decisions", datetime(2026, 1, 1, tzinfo=UTC), datetime.now(UTC))
    files = write(rows, column, tmp_path, Format.PARQUET)
    assert sorted(p.parent.name for p in files) == ["month=2026-11", "month=2026-12"]
    counts = duckdb.sql(
        f"SELECT month, count(*) FROM read_parquet('{tmp_path}/*/*.parquet',"
        " hive_partitioning = true) GROUP BY month ORDER BY month"
    ).fetchall()
    assert [(str(m), n) for m, n in counts] == [("2026-11", 1), ("2026-12", 2)]


@pytest.mark.parametrize("fmt", [Format.CSV, Format.JSONL, Format.PARQUET])
async def test_masked_conversations_hold_no_email_or_phone(
    stored: str, tmp_path: Path, fmt: Format
) -> None:
    rows, column = fetch(stored, "conversations", NOV, datetime.now(UTC))
    assert len(rows) == 3
    files = write(rows, column, tmp_path, fmt, mask=True)
    if fmt is Format.PARQUET:
        text = json.dumps(
            duckdb.sql(f"SELECT * FROM read_parquet('{tmp_path}/*/*.parquet')").fetchall(),
            default=str,
        )
    else:
        text = "".join(p.read_text() for p in files)
    assert "@example.com" not in text and "491512345" not in text
    assert "<email:" in text and "<customer:" in text
    assert "#1001" in text, "order numbers stay"


def test_the_command_exports_since_a_time(
    stored: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from clawdesk.cli import cli
    from clawdesk.settings import connection_settings

    monkeypatch.setenv("DATABASE_URL", stored)
    connection_settings.cache_clear()
    try:
        result = CliRunner().invoke(
            cli,
            ["export", "conversations", "--format", "jsonl", "--since", "2026-12-01",
             "--out", str(tmp_path)],
        )  # fmt: skip
    finally:
        connection_settings.cache_clear()
    assert result.exit_code == 0, result.output
    [part] = list(tmp_path.glob("month=*/part-0.jsonl"))
    assert part.parent.name == "month=2026-12"
    assert len(part.read_text().splitlines()) == 2
