"""Events the gateway never let through, produced straight onto the inbound topic: a
worker dead-letters them with the reason, on the topic and in Postgres."""

from __future__ import annotations

import hashlib
import json

import psycopg
import pytest
from aiokafka import AIOKafkaProducer
from psycopg.rows import dict_row

from clawdesk.bench.harness import Harness, wait_for
from tests.integration.conftest import Pipeline
from topics import dead_letter_spec, inbound_spec, outbound_spec

pytestmark = pytest.mark.integration
# The first start trains the demo NLU model and embeds the demo KB: on a loaded machine
# that alone can pass test_pipeline's 90 s.
START_TIMEOUT = 180.0


async def produce_large(pipeline: Pipeline, value: bytes) -> None:
    # Past any producer's default limit: only a misconfigured client can write this.
    producer = AIOKafkaProducer(bootstrap_servers=pipeline.bootstrap, max_request_size=8 << 20)
    await producer.start()
    try:
        await producer.send_and_wait(inbound_spec.name(pipeline.settings), value, key=b"big")
    finally:
        await producer.stop()


def stored_letters(database_url: str) -> list[dict[str, object]]:
    with psycopg.connect(database_url, row_factory=dict_row) as conn:
        return conn.execute(
            "SELECT letter_id, stage, error, event, body, body_bytes, body_sha256, truncated,"
            " escaped FROM dead_letters ORDER BY id"
        ).fetchall()


async def test_oversized_and_nul_events_are_dead_lettered_and_stored(
    pipeline: Pipeline, harness: Harness
) -> None:
    dead = await harness.follow(dead_letter_spec)
    out = await harness.follow(outbound_spec)
    pipeline.start_worker()
    await harness.ask("hi")
    await wait_for(out, lambda rs: len(rs) >= 1, START_TIMEOUT)  # the worker is up
    large = b'{"text": "' + b"x" * 5_000_000 + b'"}'
    nul = b"not json\x00\xff"
    await produce_large(pipeline, large)
    await harness.send(inbound_spec, "conv-nul", nul)

    await wait_for(dead, lambda rs: len(rs) >= 2, 60)
    letters = {json.loads(r.value)["event_bytes"]: json.loads(r.value) for r in dead}
    assert all(len(r.value) <= pipeline.settings.max_message_bytes for r in dead)
    big, small = letters[len(large)], letters[len(nul)]
    assert big["stage"] == "ingest" and big["error"].startswith("ValidationError")
    assert big["truncated"] and big["event_sha256"] == hashlib.sha256(large).hexdigest()
    assert small["escaped"] and "\\u0000" in small["event"]

    rows = {r["letter_id"]: r for r in stored_letters(pipeline.database_url)}
    assert rows[big["letter_id"]]["body_bytes"] == len(large)
    assert rows[big["letter_id"]]["truncated"] is True
    assert rows[small["letter_id"]]["body"] == nul
