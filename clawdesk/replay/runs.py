"""Replay runs in Postgres: the `replay_runs` registry, and each run's own schema.

A run's shadow workers connect with `search_path` set to the run's schema
(`replay_<name>`), which holds a full copy of the pipeline's tables (the migrations
applied there) and a copy of the tenants' configuration. Every write the stages make
lands there, so a shadow run cannot write a production table, and its results are
the run's `decisions` table.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import psycopg
from psycopg import sql
from psycopg.rows import dict_row
from psycopg.types.json import Jsonb

from clawdesk.storage.db import apply_migrations

NAME = re.compile(r"^[a-z0-9_]{1,40}$")
# Tenant configuration the stages read: copied into a run's schema when it is created.
TENANT_TABLES = ("tenants", "tenant_skills")


class RunError(RuntimeError):
    """A replay command cannot go on (unknown run, name taken, bad state)."""


@dataclass(frozen=True)
class Run:
    """One row of `replay_runs`."""

    name: str
    schema_name: str
    status: str
    candidate: dict[str, str]
    source: dict[str, Any]
    total: int
    attempt: int
    app_id: str
    topic_prefix: str
    driver_pid: int | None
    worker_pid: int | None
    error: str
    started_at: datetime
    updated_at: datetime
    finished_at: datetime | None


def schema_of(name: str) -> str:
    """The schema a run's results live in."""
    return f"replay_{name}"


def check_name(name: str) -> str:
    """The run name, if it can name a schema and topics (else RunError)."""
    if not NAME.match(name):
        raise RunError(f"run name must match {NAME.pattern}: {name!r}")
    return name


def shadow_url(url: str, schema: str) -> str:
    """`url` with its search_path set to the run's schema (other options kept)."""
    given = psycopg.conninfo.conninfo_to_dict(url).get("options") or ""
    options = f"{given} -c search_path={schema}".strip()
    return psycopg.conninfo.make_conninfo(url, options=options)


def _connect(url: str) -> psycopg.Connection[dict[str, Any]]:
    return psycopg.connect(url, row_factory=dict_row, autocommit=True)


def create(url: str, name: str, candidate: dict[str, str], source: dict[str, Any]) -> Run:
    """Register a new run (RunError if the name is taken)."""
    check_name(name)
    with _connect(url) as conn:
        cur = conn.execute(
            "INSERT INTO replay_runs (name, schema_name, status, candidate, source)"
            " VALUES (%s, %s, 'running', %s, %s) ON CONFLICT (name) DO NOTHING RETURNING *",
            (name, schema_of(name), Jsonb(candidate), Jsonb(source)),
        )
        row = cur.fetchone()
    if row is None:
        raise RunError(f"a run named {name!r} exists: `clawdesk replay resume {name}` or delete it")
    return Run(**row)


def get(url: str, name: str) -> Run:
    """The run (RunError if unknown)."""
    with _connect(url) as conn:
        row = conn.execute("SELECT * FROM replay_runs WHERE name = %s", (name,)).fetchone()
    if row is None:
        raise RunError(f"no replay run named {name!r}")
    return Run(**row)


def all_runs(url: str) -> list[Run]:
    """Every run, newest first."""
    with _connect(url) as conn:
        rows = conn.execute("SELECT * FROM replay_runs ORDER BY started_at DESC").fetchall()
    return [Run(**r) for r in rows]


def update(url: str, name: str, **fields: Any) -> None:
    """Set some columns of the run's row (and its updated_at)."""
    assignments = sql.SQL(", ").join(
        sql.SQL("{} = {}").format(sql.Identifier(k), sql.Placeholder(k)) for k in fields
    )
    query = sql.SQL("UPDATE replay_runs SET {}, updated_at = now() WHERE name = %(name)s").format(
        assignments
    )
    with _connect(url) as conn:
        conn.execute(query, {**fields, "name": name})


def prepare_schema(url: str, schema: str) -> None:
    """Create the run's schema with the pipeline's tables and the tenants' configuration."""
    with _connect(url) as conn:
        production = conn.execute("SELECT current_schema() AS s").fetchone()
        conn.execute(sql.SQL("CREATE SCHEMA IF NOT EXISTS {}").format(sql.Identifier(schema)))
    apply_migrations(shadow_url(url, schema))
    assert production is not None
    with _connect(url) as conn:
        for table in TENANT_TABLES:
            conn.execute(
                sql.SQL("INSERT INTO {} SELECT * FROM {} ON CONFLICT DO NOTHING").format(
                    sql.Identifier(schema, table), sql.Identifier(production["s"], table)
                )
            )


def drop_schema(url: str, schema: str) -> None:
    """Drop the run's schema and everything in it."""
    with _connect(url) as conn:
        conn.execute(sql.SQL("DROP SCHEMA IF EXISTS {} CASCADE").format(sql.Identifier(schema)))


def delete(url: str, name: str) -> None:
    """Forget the run: its schema and its row."""
    run = get(url, name)
    drop_schema(url, run.schema_name)
    with _connect(url) as conn:
        conn.execute("DELETE FROM replay_runs WHERE name = %s", (name,))


def settled(url: str, schema: str) -> tuple[int, int]:
    """(decisions, dead letters) in the run's schema: how far the run has got."""
    with _connect(url) as conn:
        row = conn.execute(
            sql.SQL(
                "SELECT (SELECT count(*) FROM {}) AS decided, (SELECT count(*) FROM {}) AS dead"
            ).format(sql.Identifier(schema, "decisions"), sql.Identifier(schema, "dead_letters"))
        ).fetchone()
    assert row is not None
    return int(row["decided"]), int(row["dead"])


def decided_ids(url: str, schema: str) -> set[str]:
    """The messages the run has a decision for."""
    with _connect(url) as conn:
        rows = conn.execute(
            sql.SQL("SELECT message_id FROM {}").format(sql.Identifier(schema, "decisions"))
        ).fetchall()
    return {r["message_id"] for r in rows}


def forget_conversations(
    url: str, schema: str, conversations: list[str], messages: list[str]
) -> None:
    """Remove what the run stored of these conversations (they are replayed from their
    first message again, with fresh memory), and its dead letters (made again if due)."""
    with _connect(url) as conn, conn.transaction():
        tables = conn.execute(
            "SELECT table_name FROM information_schema.columns WHERE table_schema = %s"
            " AND column_name = 'conversation_id' AND table_name IN (SELECT table_name FROM"
            " information_schema.tables WHERE table_schema = %s AND table_type = 'BASE TABLE')",
            (schema, schema),
        ).fetchall()
        for t in tables:
            if t["table_name"].startswith("messages_"):
                continue  # partitions: deleted through their parent
            conn.execute(
                sql.SQL("DELETE FROM {} WHERE conversation_id = ANY(%s)").format(
                    sql.Identifier(schema, t["table_name"])
                ),
                (conversations,),
            )
        conn.execute(
            sql.SQL("DELETE FROM {} WHERE conversation_id = ANY(%s)").format(
                sql.Identifier(schema, "messages")
            ),
            (conversations,),
        )
        conn.execute(
            sql.SQL("DELETE FROM {} WHERE event_id = ANY(%s)").format(
                sql.Identifier(schema, "inbound_dedupe")
            ),
            (messages,),
        )
        conn.execute(
            sql.SQL("DELETE FROM {} WHERE id = ANY(%s)").format(
                sql.Identifier(schema, "conversations")
            ),
            (conversations,),
        )
        conn.execute(sql.SQL("DELETE FROM {}").format(sql.Identifier(schema, "dead_letters")))
