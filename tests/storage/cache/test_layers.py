"""L1 and L2 against the session's real Redis."""

from __future__ import annotations

import asyncio

import numpy as np
import pytest
import redis

from clawdesk.storage.cache import decode_vector, encode_vector, question_digest

ANSWER = {"text": "Orders ship in 2 days.", "sources": ["faq#shipping"], "score": 0.91}


async def test_a_value_set_is_an_l1_hit(make_cache):
    cache = make_cache()
    await cache.set("k", ANSWER)
    assert await cache.get("k") == ANSWER
    assert cache.stats()["l1_hits"] == 1
    assert cache.stats()["l2_hits"] == 0


async def test_another_worker_reads_the_value_from_l2_then_from_its_l1(make_cache):
    await make_cache().set("k", ANSWER)
    other = make_cache()  # a fresh L1, the same Redis: another worker
    assert await other.get("k") == ANSWER
    assert await other.get("k") == ANSWER
    stats = other.stats()
    assert (stats["l2_hits"], stats["l1_hits"], stats["misses"]) == (1, 1, 0)


async def test_clearing_l1_falls_back_to_l2(make_cache):
    cache = make_cache()
    await cache.set("k", [1, 2, 3])
    cache.clear_local()
    assert await cache.get("k") == [1, 2, 3]
    assert cache.stats()["l2_hits"] == 1


async def test_an_unknown_key_is_a_miss(make_cache):
    cache = make_cache()
    assert await cache.get("nothing") is None
    assert cache.stats()["misses"] == 1


async def test_l1_expires_after_its_ttl_and_l2_still_serves(make_cache):
    cache = make_cache(l1_ttl_s=1, l2_ttl_s=60)
    await cache.set("k", "v")
    await asyncio.sleep(1.1)
    assert await cache.get("k") == "v"
    assert cache.stats()["l2_hits"] == 1


async def test_l2_expires_after_its_ttl(make_cache):
    cache = make_cache(l1_ttl_s=1, l2_ttl_s=1)
    await cache.set("k", "v")
    await asyncio.sleep(1.1)
    assert await cache.get("k") is None
    assert make_cache().get_local("k") is None


async def test_l2_entries_carry_the_configured_ttl(make_cache, redis_url, namespace):
    cache = make_cache(l2_ttl_s=3600)
    await cache.set("k", "v")
    with redis.Redis.from_url(redis_url) as client:
        ttl = client.ttl(f"{namespace}:{cache.name}:k")
    assert 3590 <= ttl <= 3600


async def test_a_kb_or_model_version_bump_misses(make_cache):
    cache = make_cache()
    digest = question_digest("Where is my order?")
    await cache.set(cache.key("retrieval", "demo", "kb-1", "m-1", digest), ANSWER)
    assert await cache.get(cache.key("retrieval", "demo", "kb-1", "m-1", digest)) == ANSWER
    assert await cache.get(cache.key("retrieval", "demo", "kb-2", "m-1", digest)) is None
    assert await cache.get(cache.key("retrieval", "demo", "kb-1", "m-2", digest)) is None
    assert await cache.get(cache.key("retrieval", "other", "kb-1", "m-1", digest)) is None


async def test_equivalent_questions_hit_the_same_entry(make_cache):
    cache = make_cache()
    await cache.set(cache.key("answers", "demo", question_digest("Where is X?")), ANSWER)
    assert await cache.get(cache.key("answers", "demo", question_digest(" where is x "))) == ANSWER


async def test_caches_with_other_names_do_not_share_keys(make_cache):
    await make_cache("answers").set("k", "answer")
    assert await make_cache("orders").get("k") is None


async def test_values_read_back_as_json_from_either_layer(make_cache):
    cache = make_cache()
    await cache.set("k", {"ids": (1, 2), "zh": "退货"})
    from_l1 = await cache.get("k")
    from_l2 = await make_cache().get("k")
    assert from_l1 == from_l2 == {"ids": [1, 2], "zh": "退货"}


async def test_mutating_a_returned_value_does_not_change_the_cache(make_cache):
    cache = make_cache()
    await cache.set("k", {"items": [1]})
    (await cache.get("k"))["items"].append(2)
    assert await cache.get("k") == {"items": [1]}


async def test_a_value_json_cannot_hold_is_refused(make_cache):
    with pytest.raises(TypeError):
        await make_cache().set("k", {"when": object()})


async def test_an_embedding_is_shared_between_workers(make_cache):
    vector = np.linspace(-1, 1, 384, dtype=np.float32)
    await make_cache("embeddings").set("q", encode_vector(vector))
    np.testing.assert_array_equal(decode_vector(await make_cache("embeddings").get("q")), vector)


async def test_concurrent_misses_compute_once(make_cache):
    cache = make_cache()
    calls = 0

    async def compute() -> dict:
        nonlocal calls
        calls += 1
        await asyncio.sleep(0.05)
        return ANSWER

    results = await asyncio.gather(*(cache.get_or_compute("k", compute) for _ in range(10)))
    assert calls == 1
    assert results == [ANSWER] * 10
    assert await cache.get_or_compute("k", compute) == ANSWER
    assert calls == 1
    stats = cache.stats()
    assert (stats["misses"], stats["coalesced"], stats["l1_hits"]) == (1, 9, 1)


async def test_get_or_compute_uses_l2_before_computing(make_cache):
    await make_cache().set("k", ANSWER)

    async def compute() -> dict:
        raise AssertionError("must not compute: L2 has the value")

    assert await make_cache().get_or_compute("k", compute) == ANSWER


async def test_a_failed_compute_reaches_every_waiter_and_caches_nothing(make_cache):
    cache = make_cache()

    async def fail() -> str:
        await asyncio.sleep(0.02)
        raise RuntimeError("llm down")

    results = await asyncio.gather(
        *(cache.get_or_compute("k", fail) for _ in range(3)), return_exceptions=True
    )
    assert all(isinstance(r, RuntimeError) for r in results)

    async def succeed() -> str:
        return "ok"

    assert await cache.get_or_compute("k", succeed) == "ok"


async def test_a_cancelled_waiter_does_not_cancel_the_others(make_cache):
    cache = make_cache()

    async def compute() -> str:
        await asyncio.sleep(0.1)
        return "done"

    first = asyncio.ensure_future(cache.get_or_compute("k", compute))
    second = asyncio.ensure_future(cache.get_or_compute("k", compute))
    await asyncio.sleep(0.01)
    first.cancel()
    assert await second == "done"
    assert await cache.get("k") == "done"


async def test_none_is_not_cached(make_cache):
    cache = make_cache()
    calls = 0

    async def nothing() -> None:
        nonlocal calls
        calls += 1

    await cache.get_or_compute("k", nothing)
    await cache.get_or_compute("k", nothing)
    assert calls == 2


async def test_hit_rate_counts_both_layers(make_cache):
    await make_cache().set("a", 1)
    cache = make_cache()
    await cache.set("b", 2)
    for key in ("a", "b", "c", "b"):  # l2 hit, l1 hit, miss, l1 hit
        await cache.get(key)
    stats = cache.stats()
    assert (stats["l1_hits"], stats["l2_hits"], stats["misses"]) == (2, 1, 1)
    assert stats["hit_rate"] == 0.75


def test_executor_threads_use_l1_without_an_event_loop(make_cache):
    cache = make_cache()
    cache.set_local("k", [1])
    assert cache.get_local("k") == [1]
    assert cache.get_local("other") is None
