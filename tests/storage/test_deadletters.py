"""Dead letters land in Postgres whatever their size or bytes, and in the local spool
while Postgres is down, from which they are flushed into Postgres exactly once."""

from __future__ import annotations

import hashlib
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import psycopg
import pytest
from psycopg.rows import dict_row
from psycopg_pool import AsyncConnectionPool, PoolTimeout

from clawdesk.runtime.ports import free_port
from clawdesk.settings import AppSettings
from clawdesk.storage import db, deadletters
from schemas import DeadLetter

SETTINGS = AppSettings(_env_file=None)  # type: ignore[call-arg]


@pytest.fixture
async def pool(database_url: str) -> AsyncIterator[AsyncConnectionPool]:
    p = await db.open_pool(database_url, max_size=2)
    yield p
    await p.close()


@pytest.fixture
async def dead_pool() -> AsyncIterator[AsyncConnectionPool]:
    """A pool whose Postgres is not there: every connection attempt fails."""
    p = AsyncConnectionPool(
        f"postgresql://127.0.0.1:{free_port()}/none",
        min_size=0,
        max_size=1,
        open=False,
        timeout=1.0,
    )
    await p.open(wait=False)
    yield p
    await p.close()


def rows(database_url: str) -> list[dict[str, Any]]:
    with psycopg.connect(database_url, row_factory=dict_row) as conn:
        return conn.execute("SELECT * FROM dead_letters ORDER BY id").fetchall()


def letter_of(raw: bytes, settings: AppSettings = SETTINGS) -> deadletters.Letter:
    return deadletters.make_letter("ingest", raw, ValueError("bad event"), 1, settings)


async def test_an_event_with_nul_and_invalid_utf8_is_stored_with_its_exact_bytes(
    pool: AsyncConnectionPool, database_url: str
) -> None:
    raw = b"not json \x00 and \xff\xfe bytes"
    item = letter_of(raw)

    assert await db.store_dead_letter(pool, item.letter, item.body)

    [row] = rows(database_url)
    assert row["body"] == raw
    assert row["event"] == "not json \\u0000 and \\xff\\xfe bytes"
    assert row["escaped"] is True and row["truncated"] is False
    assert row["body_sha256"] == hashlib.sha256(raw).hexdigest()


async def test_a_nul_in_the_error_is_stored_too(
    pool: AsyncConnectionPool, database_url: str
) -> None:
    item = deadletters.make_letter("nlu", b"{}", ValueError("bad\x00value"), 2, SETTINGS)

    await db.store_dead_letter(pool, item.letter, item.body)

    assert rows(database_url)[0]["error"] == "ValueError: bad\\u0000value"


async def test_a_5_mb_event_keeps_its_head_length_and_hash_and_fits_a_message(
    pool: AsyncConnectionPool, database_url: str
) -> None:
    raw = b'{"text": "' + b"x" * 5_000_000 + b'"}'
    item = letter_of(raw)

    await db.store_dead_letter(pool, item.letter, item.body)

    letter = item.letter
    assert letter.truncated and letter.event_bytes == len(raw)
    assert letter.event_sha256 == hashlib.sha256(raw).hexdigest()
    assert raw.startswith(letter.event.encode())
    assert len(letter.event.encode()) <= SETTINGS.dead_letter_max_event_bytes
    assert len(letter.to_bytes()) <= SETTINGS.max_message_bytes
    [row] = rows(database_url)
    assert row["body_bytes"] == len(raw) and row["truncated"] is True
    assert row["body"] == raw[: SETTINGS.dead_letter_max_event_bytes]


def test_control_characters_never_make_a_letter_larger_than_a_message() -> None:
    # JSON writes each control character as six bytes (\u0001): the event is cut further.
    settings = AppSettings(  # type: ignore[call-arg]
        _env_file=None, max_message_bytes=256 * 1024, dead_letter_max_event_bytes=128 * 1024
    )
    item = letter_of(b"\x01" * 1_000_000, settings)

    assert len(item.letter.to_bytes()) <= settings.max_message_bytes
    assert item.letter.truncated and item.letter.event


def test_a_letter_written_before_the_new_fields_still_parses() -> None:
    old = b'{"event": "x", "error": "E: e", "stage": "ingest", "attempts": 1,'
    old += b' "occurred_at": "2026-01-01T00:00:00Z", "schema_version": 1}'

    letter = DeadLetter.model_validate_json(old)

    assert letter.event == "x" and letter.truncated is False and letter.event_bytes is None


def test_storable_text_escapes_nul_and_keeps_valid_utf8() -> None:
    text, escaped = deadletters.storable_text(b"a\x00b")
    assert (text, escaped) == ("a\\u0000b", True)
    assert deadletters.storable_text("plain ü".encode()) == ("plain ü", False)


async def test_record_dead_letter_of_text_with_a_nul_is_stored(
    pool: AsyncConnectionPool, database_url: str
) -> None:
    await db.record_dead_letter(pool, "redrive", "not settled", 3, "pay\x00load")

    [row] = rows(database_url)
    assert row["event"] == "pay\\u0000load" and row["escaped"] is True


async def test_letters_spooled_while_postgres_is_down_are_flushed_once(
    dead_pool: AsyncConnectionPool, pool: AsyncConnectionPool, database_url: str, tmp_path: Path
) -> None:
    spool = deadletters.Spool(tmp_path / "dead-letters")
    items = [letter_of(f"event {n} \x00".encode()) for n in range(3)]

    where = [await deadletters.store(dead_pool, item, spool, timeout_s=3.0) for item in items]

    assert where == ["spool"] * 3
    assert spool.pending() == 3
    assert await deadletters.flush(pool, spool) == 3
    assert spool.pending() == 0
    stored = rows(database_url)
    assert [r["letter_id"] for r in stored] == [i.letter.letter_id for i in items]
    assert stored[0]["body"] == b"event 0 \x00"
    assert await deadletters.flush(pool, spool) == 0  # nothing left: nothing stored twice


async def test_a_flush_that_crashed_before_deleting_its_file_stores_nothing_twice(
    pool: AsyncConnectionPool, database_url: str, tmp_path: Path
) -> None:
    spool = deadletters.Spool(tmp_path / "dead-letters")
    items = [letter_of(b"first"), letter_of(b"second")]
    spool.append(items[0])
    await deadletters.flush(pool, spool)
    # As if the worker died after the insert and before the unlink: the same letter is
    # spooled again (and a new one after it).
    for item in items:
        spool.append(item)

    assert await deadletters.flush(pool, spool) == 1

    assert [r["letter_id"] for r in rows(database_url)] == [i.letter.letter_id for i in items]


async def test_a_flush_while_postgres_is_down_keeps_the_spool(
    dead_pool: AsyncConnectionPool, pool: AsyncConnectionPool, database_url: str, tmp_path: Path
) -> None:
    spool = deadletters.Spool(tmp_path / "dead-letters")
    spool.append(letter_of(b"kept"))

    with pytest.raises(PoolTimeout):
        await deadletters.flush(dead_pool, spool)
    spool.append(letter_of(b"later"))

    assert spool.pending() == 2
    assert await deadletters.flush(pool, spool) == 2
    assert sorted(r["body"] for r in rows(database_url)) == [b"kept", b"later"]


def test_a_torn_last_line_is_skipped(tmp_path: Path) -> None:
    spool = deadletters.Spool(tmp_path)
    spool.append(letter_of(b"whole"))
    with open(spool.path, "ab") as file:
        file.write(b'{"letter": {"event": "to')  # the worker died mid-append

    [claimed] = spool.claim()

    assert [i.body for i in deadletters.Spool.read(claimed)] == [b"whole"]
