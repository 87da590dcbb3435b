"""Layered cache: an in-process TTL cache (L1) in front of Redis (L2).

The seed article's `--l1-cache=memory --l1-ttl=300 --l2-cache=redis --l2-ttl=3600`:
L1 saves the Redis round trip inside one worker, L2 shares answers, orders and
knowledge-base results between workers. Redis is an optimisation, never a
dependency: when it fails the cache carries on with L1 alone, counts the error, logs
it at most once a minute, and leaves Redis alone for a few seconds before trying again.

Values are stored as JSON in both layers, so a value reads back the same whichever
layer served it and a caller mutating what it got cannot change the cache. Keys carry
every version that changes the answer (KB, model), so a version bump is a clean miss:

    key = cache.key("retrieval", tenant, kb_version, model_version, question_digest(q))
    passages = await cache.get_or_compute(key, lambda: search(q))
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import json
import logging
import math
import threading
import time
import unicodedata
from collections import Counter
from collections.abc import Awaitable, Callable
from functools import partial
from typing import TYPE_CHECKING, Any, TypeVar, cast

import numpy as np
from cachetools import TTLCache
from redis.asyncio import Redis
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff
from redis.exceptions import RedisError

from clawdesk.ops.metrics import CACHE_REQUESTS
from clawdesk.settings import app_settings, connection_settings

if TYPE_CHECKING:
    from clawdesk.settings import AppSettings, ConnectionSettings

log = logging.getLogger(__name__)

T = TypeVar("T")

# A cache lookup must never cost more than the work it saves: fail fast, don't retry.
REDIS_SOCKET_TIMEOUT_S = 0.3
REDIS_CALL_TIMEOUT_S = 0.5  # whole call, including connecting
RETRY_AFTER_S = 5.0  # circuit open: Redis is not tried for this long after a failure
LOG_EVERY_S = 60.0  # at most one "Redis unavailable" warning per cache per minute

# Any way Redis can fail: refused, reset, timed out (TimeoutError is an OSError).
_REDIS_ERRORS = (RedisError, OSError)
# Checked after NFKC, which already folds full-width ？！，；： into ASCII.
_TRAILING_PUNCT = ".?!,;:~…。、～ "
_STAT_KEYS = ("lookups", "l1_hits", "l2_hits", "misses", "coalesced", "errors", "l2_skipped")


def normalise_question(text: str) -> str:
    """The form of a question used in cache keys: "Where is X?" == "where is x".

    NFKC (full-width letters and punctuation to ASCII), whitespace collapsed,
    case-folded, trailing punctuation (English and Chinese) removed.
    """
    text = " ".join(unicodedata.normalize("NFKC", text).split()).casefold()
    return text.rstrip(_TRAILING_PUNCT)


def question_digest(text: str) -> str:
    """sha256 hex of the normalised question: a fixed-size, PII-free key part."""
    return hashlib.sha256(normalise_question(text).encode()).hexdigest()


def encode_vector(vector: np.ndarray) -> str:
    """A 1-D embedding as base64 of little-endian float32 (JSON-safe, 4 bytes a dim)."""
    array = np.asarray(vector)
    if array.ndim != 1:
        raise ValueError(f"encode_vector takes a 1-D vector, got shape {array.shape}")
    return base64.b64encode(array.astype("<f4").tobytes()).decode("ascii")


def decode_vector(encoded: str) -> np.ndarray:
    """The float32 vector `encode_vector` encoded (a writable copy)."""
    return np.frombuffer(base64.b64decode(encoded), dtype="<f4").astype(np.float32)


def _dumps(value: Any) -> str:
    # Raises TypeError for values JSON cannot hold: a caller bug, so it surfaces.
    return json.dumps(value, ensure_ascii=False, separators=(",", ":"))


class LayeredCache:
    """An L1 in-process TTL cache in front of an L2 Redis, both holding JSON.

    Use one instance per kind of value (`name`: "answers", "retrieval", ...). The async
    API belongs to one event loop (the worker's); executor threads may use
    `get_local`/`set_local`, which touch L1 only. `None` is never cached: it means
    "miss", so cache a sentinel value (e.g. `[]`) to remember "nothing found".
    """

    def __init__(
        self,
        name: str,
        redis_url: str | None,
        *,
        l1_ttl_s: int,
        l2_ttl_s: int,
        l1_max: int = 10_000,
        namespace: str = "clawdesk",
        retry_after_s: float = RETRY_AFTER_S,
    ) -> None:
        if min(l1_ttl_s, l2_ttl_s, l1_max) <= 0:
            raise ValueError("cache TTLs and l1_max must be positive")
        self.name = name
        self._prefix = f"{namespace}:{name}:"
        self._redis_url = redis_url or None  # "" or None: L1 only, by choice
        self._l2_ttl_s = l2_ttl_s
        self._retry_after_s = retry_after_s
        # L1 and the stats are shared with executor threads, hence the lock.
        self._lock = threading.Lock()
        self._l1: TTLCache[str, str] = TTLCache(maxsize=l1_max, ttl=l1_ttl_s)
        self._stats: Counter[str] = Counter()
        self._inflight: dict[str, asyncio.Task[str | None]] = {}
        self._client: Redis | None = None
        self._client_loop: asyncio.AbstractEventLoop | None = None
        # Circuit breaker: after a failure L2 is skipped until `_down_until`.
        self._failing = False
        self._down_until = 0.0
        self._last_warning = -math.inf
        self._suppressed = 0

    @classmethod
    def from_settings(
        cls,
        name: str,
        *,
        connection: ConnectionSettings | None = None,
        app: AppSettings | None = None,
    ) -> LayeredCache:
        """A cache with the configured Redis URL and TTLs, namespaced by `app_id`."""
        conn, cfg = connection or connection_settings(), app or app_settings()
        return cls(
            name,
            conn.redis_url,
            l1_ttl_s=cfg.l1_cache_ttl_s,
            l2_ttl_s=cfg.l2_cache_ttl_s,
            namespace=cfg.app_id,
        )

    @staticmethod
    def key(*parts: str | int) -> str:
        """Join key parts with ":"; a ":" inside a part is escaped so parts can't collide."""
        return ":".join(str(p).replace("%", "%25").replace(":", "%3A") for p in parts)

    # --- public API ----------------------------------------------------------------

    async def get(self, key: str) -> Any | None:
        """The cached value (L1, then L2), or None on a miss or when L2 is unavailable."""
        self._tally("lookups")
        raw = self._l1_get(key)
        if raw is None:
            raw = await self._l2_get(key)
        if raw is None:
            self._tally("misses")
            return None
        return json.loads(raw)

    async def set(self, key: str, value: Any) -> None:
        """Store a JSON-serialisable value in both layers (None is ignored)."""
        if value is not None:
            await self._store(key, _dumps(value))

    async def get_or_compute(self, key: str, compute: Callable[[], Awaitable[T]]) -> T:
        """The cached value, or `compute()`'s result, cached.

        Single-flight: concurrent misses on one key in this process share one
        `compute()`. A waiter that is cancelled does not cancel the computation the
        others wait for; an exception from `compute()` reaches every waiter and
        nothing is cached.
        """
        self._tally("lookups")
        raw = self._l1_get(key)
        if raw is None:
            raw = await asyncio.shield(self._flight(key, compute))
        # Decoded per caller, so waiters never share (and mutate) one object.
        return cast(T, None if raw is None else json.loads(raw))

    def get_local(self, key: str) -> Any | None:
        """L1 only and synchronous: for executor threads, which have no event loop."""
        self._tally("lookups")
        raw = self._l1_get(key)
        if raw is None:
            self._tally("misses")
            return None
        return json.loads(raw)

    def set_local(self, key: str, value: Any) -> None:
        """Store in L1 only (synchronous, thread-safe)."""
        if value is not None:
            self._l1_set(key, _dumps(value))

    def clear_local(self) -> None:
        """Drop every L1 entry of this process; L2 is untouched."""
        with self._lock:
            self._l1.clear()

    def stats(self) -> dict[str, float]:
        """Counts since start: lookups = l1_hits + l2_hits + misses + coalesced.

        `coalesced` lookups waited on another caller's computation; `errors` are
        failed Redis calls and `l2_skipped` the calls that did not try Redis because
        the circuit was open. `hit_rate` is (l1_hits + l2_hits) / lookups.
        """
        with self._lock:
            out: dict[str, float] = {k: self._stats[k] for k in _STAT_KEYS}
        hits = out["l1_hits"] + out["l2_hits"]
        out["hit_rate"] = hits / out["lookups"] if out["lookups"] else 0.0
        return out

    async def close(self) -> None:
        """Close the Redis connections; a later call would open new ones."""
        client, self._client = self._client, None
        if client is not None and self._client_loop is asyncio.get_running_loop():
            try:
                await client.aclose()
            except _REDIS_ERRORS:
                pass  # a dead server has nothing left to close

    # --- L1 ------------------------------------------------------------------------

    def _l1_get(self, key: str) -> str | None:
        with self._lock:
            raw = self._l1.get(key)
            if raw is not None:
                self._stats["l1_hits"] += 1
        CACHE_REQUESTS.labels(self.name, "l1", "miss" if raw is None else "hit").inc()
        return raw

    def _l1_set(self, key: str, raw: str) -> None:
        with self._lock:
            self._l1[key] = raw

    def _tally(self, stat: str) -> None:
        with self._lock:
            self._stats[stat] += 1

    # --- single flight -------------------------------------------------------------

    def _flight(self, key: str, compute: Callable[[], Awaitable[Any]]) -> asyncio.Task[str | None]:
        """The running lookup-and-compute task for `key`, started if there is none."""
        loop = asyncio.get_running_loop()
        flight = self._inflight.get(key)
        if flight is not None and flight.get_loop() is loop:
            self._tally("coalesced")
            return flight
        flight = loop.create_task(self._fill(key, compute))
        self._inflight[key] = flight
        flight.add_done_callback(partial(self._landed, key))
        return flight

    async def _fill(self, key: str, compute: Callable[[], Awaitable[Any]]) -> str | None:
        raw = await self._l2_get(key)
        if raw is not None:
            return raw
        self._tally("misses")
        value = await compute()
        if value is None:
            return None
        raw = _dumps(value)
        await self._store(key, raw)
        return raw

    def _landed(self, key: str, flight: asyncio.Task[str | None]) -> None:
        if self._inflight.get(key) is flight:
            del self._inflight[key]
        if not flight.cancelled():
            flight.exception()  # retrieved here, so no warning when every waiter left

    # --- L2 ------------------------------------------------------------------------

    async def _store(self, key: str, raw: str) -> None:
        self._l1_set(key, raw)
        client = self._l2_client()
        if client is None:
            return
        try:
            async with asyncio.timeout(REDIS_CALL_TIMEOUT_S):
                await client.set(self._prefix + key, raw, ex=self._l2_ttl_s)
        except _REDIS_ERRORS as exc:
            self._l2_failed(exc)
        else:
            self._l2_ok()

    async def _l2_get(self, key: str) -> str | None:
        client = self._l2_client()
        if client is None:
            return None
        try:
            async with asyncio.timeout(REDIS_CALL_TIMEOUT_S):
                data = await client.get(self._prefix + key)
        except _REDIS_ERRORS as exc:
            self._l2_failed(exc)
            return None
        self._l2_ok()
        CACHE_REQUESTS.labels(self.name, "l2", "miss" if data is None else "hit").inc()
        if data is None:
            return None
        self._tally("l2_hits")
        raw = data if isinstance(data, str) else data.decode()
        self._l1_set(key, raw)
        return raw

    def _l2_client(self) -> Redis | None:
        """The Redis client to use now, or None when L2 is off or must be skipped."""
        if self._redis_url is None:
            return None
        loop = asyncio.get_running_loop()
        if self._client is None or self._client_loop is None or self._client_loop.is_closed():
            self._client, self._client_loop = self._connect(self._redis_url), loop
        now = time.monotonic()
        # A redis.asyncio client is bound to the loop it first ran on.
        if self._client_loop is not loop or now < self._down_until:
            self._tally("l2_skipped")
            CACHE_REQUESTS.labels(self.name, "l2", "skipped").inc()
            return None
        if self._failing:
            # Half-open: this call probes Redis; the others keep skipping until it answers.
            self._down_until = now + self._retry_after_s
        return self._client

    @staticmethod
    def _connect(url: str) -> Redis:
        # No retries: the default (3, exponential backoff) would stall a lookup for seconds.
        return Redis.from_url(
            url,
            socket_timeout=REDIS_SOCKET_TIMEOUT_S,
            socket_connect_timeout=REDIS_SOCKET_TIMEOUT_S,
            retry=Retry(NoBackoff(), 0),
        )

    def _l2_failed(self, exc: BaseException) -> None:
        self._failing = True
        self._down_until = time.monotonic() + self._retry_after_s
        self._tally("errors")
        CACHE_REQUESTS.labels(self.name, "l2", "error").inc()
        now = time.monotonic()
        if now - self._last_warning < LOG_EVERY_S:
            self._suppressed += 1  # reported with the next warning, not one line each
            return
        log.warning(
            "redis cache unavailable, serving from memory",
            extra={
                "cache": self.name,
                "error": repr(exc),
                "retry_after_s": self._retry_after_s,
                "suppressed": self._suppressed,
            },
        )
        self._last_warning, self._suppressed = now, 0

    def _l2_ok(self) -> None:
        if self._failing:
            self._failing, self._down_until = False, 0.0
            log.info("redis cache reachable again", extra={"cache": self.name})
