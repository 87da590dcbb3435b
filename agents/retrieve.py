"""retrieve: top-k knowledge-base passages for each message, and whether they answer it."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterable

import numpy as np
from pydantic import ValidationError

from agents import guard
from clawdesk.app import app
from clawdesk.kb.answerability import is_answerable
from clawdesk.services import current, ready
from schemas import NluResult, RetrievalContext
from topics.streams import context_topic, nlu_topic

STAGE = "retrieve"
BATCH = 32
def search(nlu: NluResult, vector: list[float]) -> RetrievalContext:
    """Search the tenant's KB (blocking; run in a thread)."""
    services = current()
    kb, settings = services.kb, services.settings
    hits = kb.search(nlu.tenant_id, nlu.accepted.message.text, vector, settings.kb_top_k)
    return RetrievalContext(
        **nlu.lineage(),
        nlu=nlu,
        hits=hits,
        answerable=is_answerable(nlu, hits, settings.kb_min_score),
        kb_version=kb.version(nlu.tenant_id),
    )


async def retrieve_batch(raws: list[bytes]) -> None:
    """Embed a batch of questions at once, then search for each."""
    parsed: list[tuple[bytes, NluResult]] = []
    for raw in raws:
        try:
            parsed.append((raw, NluResult.from_bytes(raw)))
        except ValidationError as exc:
            await guard.dead_letter(STAGE, raw, exc, 1)
    loop = asyncio.get_running_loop()
    embedder = current().kb.embedder
    texts = [nlu.accepted.message.text for _, nlu in parsed]
    try:
        vectors = await loop.run_in_executor(None, embedder.encode, texts)
    except Exception:  # embedded one by one below, where errors are routed
        vectors = np.zeros((0, 0), dtype=np.float32)
    for i, (raw, nlu) in enumerate(parsed):

        async def work(_: bytes, i: int = i, nlu: NluResult = nlu) -> None:
            vec = (
                vectors[i]
                if len(vectors)
                else (
                    await loop.run_in_executor(None, embedder.encode, [nlu.accepted.message.text])
                )[0]
            )
            context = await loop.run_in_executor(None, search, nlu, vec.tolist())
            await context_topic.send(key=nlu.conversation_id.encode(), value=context.to_bytes())

        await guard.process(STAGE, raw, work)


@app.agent(nlu_topic)
async def retrieve_context(results: AsyncIterable[bytes]) -> None:
    """Find knowledge-base context for classified messages."""
    await ready()
    async for batch in results.take(BATCH, within=0.01):  # type: ignore[attr-defined]
        await retrieve_batch(batch)
