"""The nlu stage classifies a text once per model version; repeats come from the cache."""

from __future__ import annotations

from typing import Any

from clawdesk.nlu import IntentPrediction
from clawdesk.storage.cache import LayeredCache


class CountingNlu:
    """A tenant model stand-in that counts what it is asked to classify."""

    def __init__(self) -> None:
        self.model_version = "v0001"
        self.seen: list[str] = []

    def version(self, tenant_id: str) -> str:
        return self.model_version

    def predict(self, tenant_id: str, texts: list[str]) -> tuple[str, list[IntentPrediction]]:
        self.seen += texts
        return self.model_version, [
            IntentPrediction(f"intent-{len(t)}", 0.5 + len(t) / 100, [(f"intent-{len(t)}", 0.9)])
            for t in texts
        ]


async def test_repeated_texts_are_classified_once_per_model_version(fake_services: Any) -> None:
    from agents.nlu import predict

    nlu = CountingNlu()
    fake_services.nlu = nlu
    fake_services.cache = LayeredCache("t", None, l1_ttl_s=60, l2_ttl_s=60)

    version, first = await predict("demo", ["where is my order", "refund?"])
    version2, again = await predict("demo", ["refund?", "where is my order", "new text"])
    assert version == version2 == "v0001"
    assert nlu.seen == ["where is my order", "refund?", "new text"]
    assert again[:2] == [first[1], first[0]], "a cached prediction equals the model's"
    assert again[2].intent == "intent-8"

    nlu.model_version = "v0002"  # a new model: nothing cached for it yet
    await predict("demo", ["refund?"])
    assert nlu.seen[-1:] == ["refund?"]


async def test_case_and_punctuation_are_not_folded(fake_services: Any) -> None:
    from agents.nlu import predict

    nlu = CountingNlu()
    fake_services.nlu = nlu
    fake_services.cache = LayeredCache("t", None, l1_ttl_s=60, l2_ttl_s=60)
    await predict("demo", ["Refund?", "refund"])
    assert nlu.seen == ["Refund?", "refund"]
