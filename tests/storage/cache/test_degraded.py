"""Redis down: the cache serves from L1, counts the errors, backs off and recovers."""

from __future__ import annotations

import asyncio
import logging
import time

from prometheus_client import REGISTRY

from clawdesk.runtime.ports import free_port
from clawdesk.runtime.stores import EmbeddedRedis

DEAD_REDIS = "redis://127.0.0.1:1/0"


def _l2_samples(cache, result: str) -> float:
    labels = {"cache": cache.name, "layer": "l2", "result": result}
    return REGISTRY.get_sample_value("clawdesk_cache_requests_total", labels) or 0.0


async def test_with_redis_down_get_and_set_work_from_l1(make_cache):
    cache = make_cache(url=DEAD_REDIS)
    await cache.set("k", {"a": 1})
    assert await cache.get("k") == {"a": 1}
    assert await cache.get("missing") is None
    assert cache.stats()["errors"] == 1
    assert _l2_samples(cache, "error") == 1


async def test_with_redis_down_get_or_compute_still_computes(make_cache):
    cache = make_cache(url=DEAD_REDIS)

    async def compute() -> str:
        return "fresh"

    assert await cache.get_or_compute("k", compute) == "fresh"
    assert await cache.get_or_compute("k", compute) == "fresh"
    assert cache.stats()["l1_hits"] == 1


async def test_a_dead_redis_is_not_tried_again_within_the_backoff(make_cache):
    cache = make_cache(url=DEAD_REDIS, retry_after_s=30)
    started = time.monotonic()
    for i in range(50):
        await cache.get(f"k{i}")
    assert time.monotonic() - started < 1.0
    assert cache.stats()["errors"] == 1
    assert cache.stats()["l2_skipped"] == 49
    assert _l2_samples(cache, "skipped") == 49


async def test_repeated_failures_log_one_warning(make_cache, caplog):
    cache = make_cache(url=DEAD_REDIS, retry_after_s=0)  # try Redis on every call
    with caplog.at_level(logging.WARNING, logger="clawdesk.storage.cache"):
        for i in range(5):
            await cache.get(f"k{i}")
    assert cache.stats()["errors"] == 5
    assert len([r for r in caplog.records if r.name == "clawdesk.storage.cache"]) == 1


async def test_l2_is_used_again_once_redis_comes_back(make_cache, tmp_path):
    port = free_port()
    url = f"redis://127.0.0.1:{port}/0"
    cache = make_cache(url=url, retry_after_s=0.5)
    other = make_cache(url=url)  # another worker, reading what reached Redis
    await cache.set("before", 1)
    assert cache.stats()["errors"] == 1

    server = EmbeddedRedis(tmp_path / "r.db", port=port)
    server.start()
    try:
        await cache.set("during-backoff", 2)  # circuit still open: L1 only
        assert cache.stats()["l2_skipped"] == 1
        await asyncio.sleep(0.6)
        await cache.set("after", 3)
        assert await other.get("after") == 3
        assert await other.get("during-backoff") is None
        assert cache.stats()["errors"] == 1
    finally:
        server.stop()
