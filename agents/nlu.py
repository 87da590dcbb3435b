"""nlu: intent with a calibrated confidence, entities and language, in batches."""

from __future__ import annotations

import asyncio
import hashlib
import logging
from collections.abc import AsyncIterable, Iterable
from dataclasses import asdict
from typing import Any

from pydantic import ValidationError

from agents import guard
from clawdesk.app import app
from clawdesk.nlu.entities import extract_entities
from clawdesk.nlu.labels import OOS
from clawdesk.nlu.language import reply_language
from clawdesk.nlu.prediction import IntentPrediction  # light: the model is the services'
from clawdesk.nlu.resolve import resolve_intent
from clawdesk.ops import tracing
from clawdesk.services import current, ready
from clawdesk.storage import db
from schemas import AcceptedMessage, ConversationSnapshot, Entity, NluResult
from topics.streams import accepted_topic, nlu_topic

log = logging.getLogger(__name__)
STAGE = "nlu"
BATCH = 32


def previous_question(memory: ConversationSnapshot) -> str | None:
    """The customer's last message before this one, if any."""
    return next((t.text for t in reversed(memory.turns) if t.role == "customer"), None)


def understand(
    accepted: AcceptedMessage,
    prediction: IntentPrediction,
    model_version: str,
    min_confidence: float,
    *,
    previous: IntentPrediction | None = None,
    intents: Iterable[str] = (),
    resolution: bool = True,
) -> NluResult:
    """The NLU result of one message: the model's intent above `min_confidence`, or what
    the message's action words, entities and the conversation say (`resolve_intent`);
    `previous` is the model's prediction of the customer's previous message. An intent
    the channel stated (`InboundMessage.intent`: a menu entry, a button) is taken as
    it is. With `resolution` off, only the model and its floor decide."""
    text = accepted.message.text
    memory = accepted.memory
    entities = [
        Entity(kind=e.kind, value=e.value, start=e.start, end=e.end) for e in extract_entities(text)
    ]
    before = previous_question(memory)
    resolved = resolve_intent(
        text,
        prediction,
        min_confidence,
        entity_kinds=[e.kind for e in entities],
        intents=intents,
        remembered_order="order_number" in memory.slots,
        previous=(before, previous) if before is not None and previous is not None else None,
    )
    intent, confidence, decided_by = resolved.intent, float(resolved.confidence), resolved.source
    if not resolution:  # the plain model: its intent at the floor, else out of scope
        confidence = float(prediction.confidence)
        sure = prediction.intent != OOS and confidence >= min_confidence
        intent, decided_by = (prediction.intent, "model") if sure else (OOS, "oos")
    if accepted.message.intent:
        # The channel says what the customer chose (a menu entry, a button): no guess.
        intent, confidence, decided_by = accepted.message.intent, 1.0, "channel"
    return NluResult(
        **accepted.lineage(),
        accepted=accepted,
        intent=intent,
        confidence=round(confidence, 4),
        entities=entities,
        language=reply_language(
            text, memory.language, [t.text for t in memory.turns if t.role == "customer"]
        ),
        model_version=model_version,
        query=resolved.query,
        decided_by=decided_by,
    )


async def predict(tenant_id: str, texts: list[str]) -> tuple[str, list[IntentPrediction]]:
    """The tenant's model version and a prediction per text: from the cache where the
    same text was classified by the same model version, the rest in one batch in a
    thread (so the loop keeps serving the consumer)."""
    services = current()
    nlu, cache = services.intent_models(), services.cache
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


async def predict_with_previous(
    tenant_id: str, accepted: list[AcceptedMessage]
) -> list[tuple[str, IntentPrediction, IntentPrediction | None]]:
    """For each message: the model version, its prediction, and the prediction of the
    customer's previous message (a cache hit: it was classified a turn ago), which a
    follow-up ("and to Germany?") may inherit its intent from."""
    texts = [a.message.text for a in accepted]
    befores = [previous_question(a.memory) for a in accepted]
    extra = sorted({b for b in befores if b is not None} - set(texts))
    version, preds = await predict(tenant_id, texts + extra)
    by_text = dict(zip(texts + extra, preds, strict=True))
    return [
        (version, by_text[t], by_text[b] if b is not None else None)
        for t, b in zip(texts, befores, strict=True)
    ]


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
    results: dict[int, tuple[str, IntentPrediction, IntentPrediction | None]] = {}
    for tenant in {acc.tenant_id for _, acc in parsed}:
        idx = [i for i, (_, acc) in enumerate(parsed) if acc.tenant_id == tenant]
        try:
            found = await predict_with_previous(tenant, [parsed[i][1] for i in idx])
            results.update(zip(idx, found, strict=True))
        except Exception:  # classified one by one below, where errors are routed
            log.warning("batch classification failed", extra={"tenant_id": tenant}, exc_info=True)
    for i, (raw, acc) in enumerate(parsed):

        async def work(_: bytes, i: int = i, acc: AcceptedMessage = acc) -> None:
            if i in results:
                version, prediction, previous = results[i]
            else:
                version, prediction, previous = (await predict_with_previous(acc.tenant_id, [acc]))[
                    0
                ]
            nlu = current().intent_models()
            floor = nlu.min_confidence_for(acc.tenant_id)
            result = understand(
                acc,
                prediction,
                version,
                floor,
                previous=previous,
                intents=nlu.intents(acc.tenant_id),
                resolution=current().settings.nlu_resolution,
            )
            await emit(result)

        await guard.process(STAGE, raw, work, traced.get(i))


@app.agent(accepted_topic)
async def classify_intent(messages: AsyncIterable[bytes]) -> None:
    """Classify accepted messages in small batches."""
    await ready()
    async for events in messages.take_events(BATCH, within=0.01):  # type: ignore[attr-defined]
        headers = [e.headers for e in events] if tracing.enabled() else None
        await classify_batch([e.value for e in events], headers)
