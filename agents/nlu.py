"""nlu: intent with a calibrated confidence, entities and language, in batches."""

from __future__ import annotations

import asyncio
import hashlib
import logging
from collections.abc import AsyncIterable
from dataclasses import asdict
from typing import TYPE_CHECKING, Any

from pydantic import ValidationError

from agents import guard
from clawdesk import db, tracing
from clawdesk.app import app
from clawdesk.nlu.entities import extract_entities
from clawdesk.nlu.language import detect_language
from clawdesk.services import current, ready
from schemas import AcceptedMessage, Entity, NluResult
from topics.streams import accepted_topic, nlu_topic

if TYPE_CHECKING:  # the model module pulls in torch: loaded by the services, off the loop
    from clawdesk.nlu import IntentPrediction

log = logging.getLogger(__name__)
STAGE = "nlu"
OOS = "oos"
BATCH = 32


def understand(
    accepted: AcceptedMessage,
    prediction: IntentPrediction,
    model_version: str,
    min_confidence: float,
) -> NluResult:
    """The NLU result of one message; below `min_confidence` the intent is `oos`."""
    text = accepted.message.text
    intent = prediction.intent if prediction.confidence >= min_confidence else OOS
    entities = [
        Entity(kind=e.kind, value=e.value, start=e.start, end=e.end) for e in extract_entities(text)
    ]
    return NluResult(
        **accepted.lineage(),
        accepted=accepted,
        intent=intent,
        confidence=round(float(prediction.confidence), 4),
        entities=entities,
        language=detect_language(text),
        model_version=model_version,
    )


async def predict(tenant_id: str, texts: list[str]) -> tuple[str, list[IntentPrediction]]:
    """The tenant's model version and a prediction per text: from the cache where the
    same text was classified by the same model version, the rest in one batch in a
    thread (so the loop keeps serving the consumer)."""
    from clawdesk.nlu import IntentPrediction

    services = current()
    nlu, cache = services.nlu, services.cache
    version = nlu.version(tenant_id)
    # The exact text, not the normalised question: a prediction may depend on case or
    # punctuation, and a cached one must equal what the model would say.
    keys = [
        cache.key("nlu", tenant_id, version, hashlib.sha256(t.encode()).hexdigest()) for t in texts
    ]
    # One round trip each to L2, concurrently: a batch of 32 misses costs one latency.
    found = await asyncio.gather(*(cache.get(k) for k in keys))
    predictions: list[IntentPrediction | None] = [
        None if f is None else IntentPrediction(f["intent"], f["confidence"], _top(f["top"]))
        for f in found
    ]
    missing = [i for i, p in enumerate(predictions) if p is None]
    if missing:
        loop = asyncio.get_running_loop()
        fresh_version, fresh = await loop.run_in_executor(
            None, nlu.predict, tenant_id, [texts[i] for i in missing]
        )
        if fresh_version != version:  # a new model was loaded meanwhile: use it for all
            return await loop.run_in_executor(None, nlu.predict, tenant_id, texts)
        for i, prediction in zip(missing, fresh, strict=True):
            predictions[i] = prediction
        # Stored concurrently too, for the same reason as the lookups.
        await asyncio.gather(
            *(cache.set(keys[i], asdict(p)) for i, p in zip(missing, fresh, strict=True))
        )
    return version, [p for p in predictions if p is not None]


def _top(pairs: list[list[Any]]) -> list[tuple[str, float]]:
    """`IntentPrediction.top` back from JSON (where tuples became lists)."""
    return [(str(intent), float(p)) for intent, p in pairs]


async def emit(result: NluResult) -> None:
    """Store the verdict and pass the result on."""
    conv = result.conversation_id
    await db.record_intent(current().pool, result)
    await nlu_topic.send(key=conv.encode(), value=result.to_bytes(), headers=tracing.outgoing())


async def classify_batch(raws: list[bytes], headers: list[Any] | None = None) -> None:
    """Classify a batch with one model call per tenant; each event fails on its own."""
    parsed: list[tuple[bytes, AcceptedMessage]] = []
    traced: dict[int, Any] = {}  # trace context per parsed event (tracing on)
    for n, raw in enumerate(raws):
        try:
            parsed.append((raw, AcceptedMessage.from_bytes(raw)))
            if headers is not None:
                traced[len(parsed) - 1] = headers[n]
        except ValidationError as exc:
            try:
                await guard.dead_letter(STAGE, raw, exc, 1)
            except Exception:  # a failed dead letter must not end the agent's loop
                log.exception("could not dead-letter a malformed event", extra={"stage": STAGE})
    results: dict[int, tuple[str, IntentPrediction]] = {}
    for tenant in {acc.tenant_id for _, acc in parsed}:
        idx = [i for i, (_, acc) in enumerate(parsed) if acc.tenant_id == tenant]
        try:
            version, preds = await predict(tenant, [parsed[i][1].message.text for i in idx])
            results.update({i: (version, p) for i, p in zip(idx, preds, strict=True)})
        except Exception:  # classified one by one below, where errors are routed
            log.warning("batch classification failed", extra={"tenant_id": tenant}, exc_info=True)
    for i, (raw, acc) in enumerate(parsed):

        async def work(_: bytes, i: int = i, acc: AcceptedMessage = acc) -> None:
            if i in results:
                version, prediction = results[i]
            else:
                version, preds = await predict(acc.tenant_id, [acc.message.text])
                prediction = preds[0]
            floor = current().nlu.min_confidence_for(acc.tenant_id)
            await emit(understand(acc, prediction, version, floor))

        await guard.process(STAGE, raw, work, traced.get(i))


@app.agent(accepted_topic)
async def classify_intent(messages: AsyncIterable[bytes]) -> None:
    """Classify accepted messages in small batches."""
    await ready()
    async for events in messages.take_events(BATCH, within=0.01):  # type: ignore[attr-defined]
        headers = [e.headers for e in events] if tracing.enabled() else None
        await classify_batch([e.value for e in events], headers)
