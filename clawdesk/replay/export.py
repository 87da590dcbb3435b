"""What `clawdesk export conversations|decisions|replay RUN` writes (the command is
`clawdesk/cli/export.py`): tables for notebooks, DuckDB
and Spark, as Parquet (pyarrow), CSV or JSON lines, partitioned by month like the
messages table (`<out>/month=2026-12/part-0.parquet`, Hive style, which DuckDB's
`read_parquet(..., hive_partitioning=true)` and Spark read as a column).

`--mask` replaces personal data with stable pseudonyms (the same address always gives
the same token, so joins and counts still work): e-mail addresses and phone numbers in
every text, and the customer ids (which are phone numbers on WhatsApp).
"""

from __future__ import annotations

import hashlib
import json
import re
from collections import defaultdict
from collections.abc import Iterable
from datetime import UTC, datetime
from enum import StrEnum
from pathlib import Path
from typing import Any

import psycopg
from psycopg import sql
from psycopg.rows import dict_row

EMAIL = re.compile(r"[\w.+-]+@[\w-]+(?:\.[\w-]+)+")
# 8+ digits with the usual separators; not inside a word (tracking numbers mix letters).
PHONE = re.compile(r"(?<![\w#])\+?\d[\d ().-]{6,}\d(?!\w)")
MASKED_IDS = ("customer_id",)


class Format(StrEnum):
    """Output file formats."""

    PARQUET = "parquet"
    CSV = "csv"
    JSONL = "jsonl"


def pseudonym(kind: str, value: str) -> str:
    """A stable token for a personal value (same input, same token)."""
    return f"<{kind}:{hashlib.sha256(value.casefold().encode()).hexdigest()[:10]}>"


def mask_text(text: str) -> str:
    """The text with e-mail addresses and phone numbers replaced by pseudonyms."""
    text = EMAIL.sub(lambda m: pseudonym("email", m.group()), text)
    return PHONE.sub(lambda m: pseudonym("phone", re.sub(r"\D", "", m.group())), text)


def mask_value(value: Any) -> Any:
    """`mask_text` through strings, lists and mappings (JSON columns)."""
    if isinstance(value, str):
        return mask_text(value)
    if isinstance(value, list):
        return [mask_value(v) for v in value]
    if isinstance(value, dict):
        return {k: mask_value(v) for k, v in value.items()}
    return value


def mask_row(row: dict[str, Any]) -> dict[str, Any]:
    """A row with its personal data masked."""
    out = {k: mask_value(v) for k, v in row.items()}
    for column in MASKED_IDS:
        if isinstance(row.get(column), str):
            out[column] = pseudonym("customer", row[column])
    return out


# The queries of each dataset: (SQL with a {table} for decisions, the time column).
CONVERSATIONS = (
    "SELECT m.id AS message_id, m.conversation_id, m.tenant_id, m.channel,"
    " m.user_id AS customer_id, m.direction, m.author, m.text, m.intent, m.confidence,"
    ' m."timestamp" AS at, c.language, c.status AS conversation_status'
    " FROM messages m JOIN conversations c ON c.id = m.conversation_id"
    ' WHERE m."timestamp" >= %(since)s AND m."timestamp" < %(until)s'
    ' ORDER BY m."timestamp", m.id'
)
DECISIONS = (
    "SELECT * FROM {table} WHERE received_at >= %(since)s AND received_at < %(until)s"
    " ORDER BY received_at, message_id"
)


def fetch(
    url: str, dataset: str, since: datetime, until: datetime, run: str | None = None
) -> tuple[list[dict[str, Any]], str]:
    """The dataset's rows and the name of its time column."""
    params = {"since": since, "until": until}
    with psycopg.connect(url, row_factory=dict_row) as conn:
        if dataset == "conversations":
            return conn.execute(CONVERSATIONS, params).fetchall(), "at"
        if dataset == "decisions":
            table = sql.Identifier("decisions")
        else:
            from clawdesk.replay import runs

            table = sql.Identifier(runs.get(url, run or "").schema_name, "decisions")
        query = sql.SQL(DECISIONS).format(table=table)
        rows = conn.execute(query, params).fetchall()
    if run:
        rows = [{"run": run, **r} for r in rows]
    return rows, "received_at"


def _flat(row: dict[str, Any]) -> dict[str, Any]:
    # JSON columns as JSON text: one schema for every file, whatever the values hold.
    return {
        k: json.dumps(v, ensure_ascii=False) if isinstance(v, dict | list) else v
        for k, v in row.items()
    }


def by_month(rows: Iterable[dict[str, Any]], column: str) -> dict[str, list[dict[str, Any]]]:
    """Rows grouped by the UTC month (`YYYY-MM`) of their time column."""
    months: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for row in rows:
        months[row[column].astimezone(UTC).strftime("%Y-%m")].append(row)
    return dict(sorted(months.items()))


def write(
    rows: list[dict[str, Any]], column: str, out: Path, fmt: Format, *, mask: bool = False
) -> list[Path]:
    """Write the rows under `out/month=YYYY-MM/part-0.<fmt>`; the files written."""
    import pyarrow as pa
    import pyarrow.csv as pacsv
    import pyarrow.parquet as pq

    written: list[Path] = []
    for month, part in by_month(rows, column).items():
        folder = out / f"month={month}"
        folder.mkdir(parents=True, exist_ok=True)
        flat = [_flat(mask_row(r) if mask else r) for r in part]
        path = folder / f"part-0.{fmt.value}"
        if fmt is Format.JSONL:
            with path.open("w") as f:
                for r in flat:
                    f.write(json.dumps(r, ensure_ascii=False, default=str) + "\n")
        else:
            table = pa.Table.from_pylist(flat)
            if fmt is Format.PARQUET:
                pq.write_table(table, path)
            else:
                pacsv.write_csv(table, path)
        written.append(path)
    return written


def since_time(text: str | None) -> datetime:
    if not text:
        return datetime(1970, 1, 1, tzinfo=UTC)
    at = datetime.fromisoformat(text)
    return at if at.tzinfo else at.replace(tzinfo=UTC)
