"""A factory of LayeredCaches on the session's real Redis, one namespace per test."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator, Callable, Iterator
from typing import Any

import pytest
import redis

from clawdesk.storage.cache import LayeredCache

CacheFactory = Callable[..., LayeredCache]


@pytest.fixture()
def namespace(redis_url: str) -> Iterator[str]:
    """A namespace of this test only; its Redis keys are deleted afterwards."""
    ns = f"test-{uuid.uuid4().hex[:12]}"
    yield ns
    with redis.Redis.from_url(redis_url) as client:
        keys = list(client.scan_iter(f"{ns}:*"))
        if keys:
            client.delete(*keys)


@pytest.fixture()
async def make_cache(redis_url: str, namespace: str) -> AsyncIterator[CacheFactory]:
    """Build caches sharing this test's namespace (as workers of one deployment would).

    Every cache gets a fresh L1; the `name` defaults to one unique to the test, so
    Prometheus samples labelled with it belong to this test alone.
    """
    caches: list[LayeredCache] = []
    default_name = f"c{uuid.uuid4().hex[:8]}"

    def make(name: str = default_name, url: str | None = redis_url, **kw: Any) -> LayeredCache:
        kw = {"l1_ttl_s": 300, "l2_ttl_s": 3600, "namespace": namespace, **kw}
        cache = LayeredCache(name, url, **kw)
        caches.append(cache)
        return cache

    yield make
    for cache in caches:
        await cache.close()
