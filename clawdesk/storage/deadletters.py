"""Dead letters that always land somewhere durable, whatever their size or bytes.

A stage's dead letter goes to the dead-letter topic and to Postgres, and neither may
refuse it: a producer sends records up to `max_message_bytes`, and a Postgres text
column takes no NUL (nor invalid UTF-8). So a letter keeps at most
`dead_letter_max_event_bytes` of its event, as text with NULs and invalid bytes
escaped, plus the event's length and SHA-256; Postgres also gets the raw head as
bytes. While Postgres does not answer, letters are appended to a JSONL spool in the
worker's data dir, which a worker timer moves into Postgres once it answers; the
letter id makes every copy land once.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import json
import logging
import os
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

from psycopg_pool import AsyncConnectionPool

from clawdesk.ops import metrics
from clawdesk.settings import AppSettings
from clawdesk.storage import db
from schemas import DeadLetter

log = logging.getLogger(__name__)

MAX_ERROR_CHARS = 2000
# Room for the record's key, headers and batch framing inside `max_message_bytes`.
RECORD_OVERHEAD_BYTES = 4 * 1024
NUL_ESCAPE = "\\u0000"  # what a NUL byte reads as in a stored letter


@dataclass(frozen=True)
class Letter:
    """A dead letter and the raw head of its event (exact bytes, for a bytea column)."""

    letter: DeadLetter
    body: bytes


def storable_text(data: bytes) -> tuple[str, bool]:
    """`data` as text every store takes, and whether anything had to be escaped.

    Invalid UTF-8 becomes `\\xNN` (backslashreplace) and NUL becomes the visible text
    `\\u0000`: Postgres text columns refuse both.
    """
    try:
        text, escaped = data.decode("utf-8"), False
    except UnicodeDecodeError:
        text, escaped = data.decode("utf-8", "backslashreplace"), True
    if "\x00" in text:
        text, escaped = text.replace("\x00", NUL_ESCAPE), True
    return text, escaped


def storable_error(error: BaseException) -> str:
    """The reason of a letter: type and message, bounded, NUL-free, valid UTF-8."""
    reason = f"{type(error).__name__}: {error}"[:MAX_ERROR_CHARS]
    # Lone surrogates (from surrogateescape'd input) cannot be encoded for Postgres.
    reason = reason.encode("utf-8", "backslashreplace").decode("utf-8")
    return reason.replace("\x00", NUL_ESCAPE)


def make_letter(
    stage: str, raw: bytes, error: BaseException, attempts: int, settings: AppSettings
) -> Letter:
    """The dead letter of `raw`, small enough for the topic and storable anywhere."""
    limit = settings.dead_letter_max_event_bytes
    head = raw[:limit]
    text, escaped = storable_text(head)
    event = _cut_utf8(text, limit)
    letter = DeadLetter(
        event=event,
        error=storable_error(error),
        stage=stage,
        attempts=attempts,
        event_bytes=len(raw),
        event_sha256=hashlib.sha256(raw).hexdigest(),
        truncated=len(raw) > limit or event != text,
        escaped=escaped,
    )
    return Letter(_fit(letter, settings.max_message_bytes - RECORD_OVERHEAD_BYTES), head)


def _cut_utf8(text: str, max_bytes: int) -> str:
    """The longest prefix of `text` whose UTF-8 takes at most `max_bytes`."""
    encoded = text.encode("utf-8")
    if len(encoded) <= max_bytes:
        return text
    return encoded[:max_bytes].decode("utf-8", "ignore")


def _fit(letter: DeadLetter, max_bytes: int) -> DeadLetter:
    """Halve the event until the serialized letter fits in `max_bytes`.

    JSON escapes control characters six bytes apiece, so a bounded event alone does
    not bound the letter.
    """
    while len(letter.to_bytes()) > max_bytes and letter.event:
        event = letter.event[: len(letter.event) // 2]
        letter = letter.model_copy(update={"event": event, "truncated": True})
    return letter


# --- Publishing and storing ----------------------------------------------------------


class LetterTopic(Protocol):
    """The part of a Faust topic a dead letter is sent with."""

    async def send(self, *, key: bytes, value: bytes) -> object:
        """Hand a record to the producer; the returned future resolves on the ack."""
        ...


async def publish(topic: LetterTopic, letter: DeadLetter, timeout_s: float) -> bool:
    """Send the letter to the topic and wait (bounded) for the broker's ack."""
    future = await topic.send(key=letter.stage.encode(), value=letter.to_bytes())
    if isinstance(future, asyncio.Future):
        # wait, not wait_for: cancelling Faust's future would break its producer buffer.
        done, _ = await asyncio.wait({future}, timeout=timeout_s)
        if not done:
            return False
        future.result()  # raises the broker's refusal
    return True


async def store(pool: AsyncConnectionPool, item: Letter, spool: Spool, timeout_s: float) -> str:
    """Insert the letter into Postgres, or append it to the spool if that fails;
    where it went ("postgres" or "spool"). Raises only when both fail."""
    try:
        async with asyncio.timeout(timeout_s):
            await db.store_dead_letter(pool, item.letter, item.body)
        return "postgres"
    except Exception as err:
        log.warning(
            "dead letter not stored in postgres; spooled",
            extra={"letter_id": item.letter.letter_id, "error": repr(err)},
        )
    await asyncio.to_thread(spool.append, item)
    metrics.DEAD_LETTERS_SPOOLED.inc()
    metrics.DEAD_LETTERS_SPOOL_PENDING.inc()
    return "spool"


# --- The local spool ------------------------------------------------------------------


class Spool:
    """An append-only JSONL file of the letters Postgres did not take yet.

    One process owns a data dir (RocksDB locks it too), so a thread lock is enough to
    keep an append from landing in a file that a flush has already claimed and read.
    Writes are fsynced: a spooled letter survives a crash of the worker.
    """

    def __init__(self, directory: Path) -> None:
        self.directory = directory
        self.path = directory / "spool.jsonl"
        self._lock = threading.Lock()

    def append(self, item: Letter) -> None:
        """Append one letter (blocking: run it in a thread)."""
        line = json.dumps(
            {
                "letter": item.letter.model_dump(mode="json"),
                "body": base64.b64encode(item.body).decode("ascii"),
            }
        )
        with self._lock:
            self.directory.mkdir(parents=True, exist_ok=True)
            with open(self.path, "ab") as file:
                file.write(line.encode("utf-8") + b"\n")
                file.flush()
                os.fsync(file.fileno())

    def claim(self) -> list[Path]:
        """Move the current spool aside for a flush; every claimed file, oldest first
        (files claimed by a flush that failed or crashed are claimed again)."""
        with self._lock:
            if self.path.exists():
                self.path.rename(self.directory / f"spool-{time.time_ns()}.flushing")
            return sorted(self.directory.glob("spool-*.flushing"))

    @staticmethod
    def read(path: Path) -> list[Letter]:
        """The letters of a claimed file; a torn last line (a crash mid-append) is
        skipped with a warning."""
        letters: list[Letter] = []
        for number, line in enumerate(path.read_bytes().splitlines(), 1):
            try:
                record = json.loads(line)
                letter = DeadLetter.model_validate(record["letter"])
                letters.append(Letter(letter, base64.b64decode(record["body"])))
            except (ValueError, KeyError, TypeError):
                log.warning(
                    "unreadable spooled dead letter", extra={"file": str(path), "line": number}
                )
        return letters

    def pending(self) -> int:
        """Letters waiting in the spool (its files' lines)."""
        with self._lock:
            files = [self.path, *self.directory.glob("spool-*.flushing")]
            return sum(len(f.read_bytes().splitlines()) for f in files if f.exists())


_spools: dict[Path, Spool] = {}
_spools_lock = threading.Lock()
_flush_lock = asyncio.Lock()


def spool_of(settings: AppSettings) -> Spool:
    """The process's spool under the worker's data dir (one object per directory, so
    that every append shares its lock)."""
    directory = (settings.data_dir / "dead-letters").resolve()
    with _spools_lock:
        return _spools.setdefault(directory, Spool(directory))


async def flush(pool: AsyncConnectionPool, spool: Spool) -> int:
    """Move every spooled letter into Postgres; how many were inserted.

    A claimed file is deleted only once all its letters are in; if Postgres fails
    half-way the file stays and the next flush inserts it again, the letters already
    in being skipped by their id (ON CONFLICT DO NOTHING): each lands exactly once.
    """
    inserted = 0
    async with _flush_lock:  # the timer and a caller may overlap
        for path in await asyncio.to_thread(spool.claim):
            letters = await asyncio.to_thread(Spool.read, path)
            inserted += await db.store_dead_letters(pool, [(i.letter, i.body) for i in letters])
            path.unlink(missing_ok=True)
            metrics.DEAD_LETTERS_FLUSHED.inc(len(letters))
            log.info(
                "spooled dead letters stored in postgres",
                extra={"file": path.name, "letters": len(letters)},
            )
        metrics.DEAD_LETTERS_SPOOL_PENDING.set(await asyncio.to_thread(spool.pending))
    return inserted
