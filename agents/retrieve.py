"""retrieve: top-k knowledge-base passages for each message, and whether they answer it."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterable
from typing import Any

import numpy as np
from pydantic import ValidationError

from agents import guard
from clawdesk.app import app
from clawdesk.kb.answerability import is_answerable
from clawdesk.ops import tracing
from clawdesk.services import current, ready
from clawdesk.storage.cache import decode_vector, encode_vector, question_digest
from schemas import KbHit, NluResult, RetrievalContext
from topics.streams import context_topic, nlu_topic

log = logging.getLogger(__name__)
STAGE = "retrieve"
BATCH = 32


def search(nlu: NluResult, vector: list[float]) -> list[KbHit]:
    """Search the tenant's KB (blocking; run in a thread)."""
    services = current()
    return services.knowledge_base().search(
        nlu.tenant_id,
        question(nlu),
        vector,
        services.settings.kb_top_k,
        language=nlu.language,
    )


def question(nlu: NluResult) -> str:
    """What to search the KB with: the message, or a follow-up joined to the question
    it follows ("what about Germany?" after "how long does shipping take?")."""
    return nlu.query or nlu.accepted.message.text


async def cached_vectors(texts: list[str]) -> np.ndarray:
    """Embeddings of `texts`, from the cache where possible; misses are embedded in one
    batch in a thread so the loop keeps serving the consumer."""
    services = current()
    cache, embedder = services.cache, services.knowledge_base().embedder
    keys = [cache.key("emb", embedder.version, question_digest(t)) for t in texts]
    # One round trip each to L2, concurrently: a batch of 32 misses costs one latency.
    found = await asyncio.gather(*(cache.get(k) for k in keys))
    missing = [i for i, f in enumerate(found) if f is None]
    vectors = np.zeros((len(texts), embedder.dimension), dtype=np.float32)
    for i, f in enumerate(found):
        if f is not None:
            vectors[i] = decode_vector(f)
    if missing:
        loop = asyncio.get_running_loop()
        fresh = await loop.run_in_executor(None, embedder.encode, [texts[i] for i in missing])
        for i, vec in zip(missing, fresh, strict=True):
            vectors[i] = vec
        # Stored concurrently too, for the same reason as the lookups.
        await asyncio.gather(*(cache.set(keys[i], encode_vector(vectors[i])) for i in missing))
    return vectors


async def build_context(nlu: NluResult, vector: np.ndarray) -> RetrievalContext:
    """Hits for one message (cached per KB version, encoder, k, language and question),
    and whether they answer it."""
    services = current()
    cache, kb, settings = services.cache, services.knowledge_base(), services.settings
    kb_version = kb.version(nlu.tenant_id)
    key = cache.key(
        "retrieval",
        nlu.tenant_id,
        kb_version,
        kb.embedder.version,
        settings.kb_top_k,
        nlu.language,  # the search ranks passages in the customer's language first
        question_digest(question(nlu)),
    )
    loop = asyncio.get_running_loop()

    async def compute() -> list[dict[str, object]]:
        hits = await loop.run_in_executor(None, search, nlu, vector.tolist())
        return [h.model_dump() for h in hits]

    hits = [KbHit.model_validate(h) for h in await cache.get_or_compute(key, compute)]
    return RetrievalContext(
        **nlu.lineage(),
        nlu=nlu,
        hits=hits,
        answerable=is_answerable(nlu, hits, settings.kb_min_score),
        kb_version=kb_version,
    )


async def retrieve_batch(raws: list[bytes], headers: list[Any] | None = None) -> None:
    """Embed a batch of questions at once (cache first), then search for each."""
    parsed: list[tuple[bytes, NluResult]] = []
    traced: dict[int, Any] = {}  # trace context per parsed event (tracing on)
    for n, raw in enumerate(raws):
        try:
            parsed.append((raw, NluResult.from_bytes(raw)))
            if headers is not None:
                traced[len(parsed) - 1] = headers[n]
        except ValidationError as exc:
            try:
                await guard.dead_letter(STAGE, raw, exc, 1)
            except Exception:  # a failed dead letter must not end the agent's loop
                log.exception("could not dead-letter a malformed event", extra={"stage": STAGE})
    try:
        vectors = await cached_vectors([question(nlu) for _, nlu in parsed])
    except Exception:  # embedded one by one below, where errors are routed
        vectors = None
    for i, (raw, nlu) in enumerate(parsed):

        async def work(_: bytes, i: int = i, nlu: NluResult = nlu) -> None:
            vec = vectors[i] if vectors is not None else (await cached_vectors([question(nlu)]))[0]
            context = await build_context(nlu, vec)
            await context_topic.send(
                key=nlu.conversation_id.encode(),
                value=context.to_bytes(),
                headers=tracing.outgoing(),
            )

        await guard.process(STAGE, raw, work, traced.get(i))


@app.agent(nlu_topic)
async def retrieve_context(results: AsyncIterable[bytes]) -> None:
    """Find knowledge-base context for classified messages."""
    await ready()
    async for events in results.take_events(BATCH, within=0.01):  # type: ignore[attr-defined]
        headers = [e.headers for e in events] if tracing.enabled() else None
        await retrieve_batch([e.value for e in events], headers)
