"""The retrieve stage searches as `clawdesk eval retrieval` does (in the customer's
language) and keys its cached results by everything the search depends on."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import numpy as np
import pytest

from clawdesk.kb.encoders import MULTILINGUAL_E5, kb_encoder
from clawdesk.kb.index import KnowledgeBase, open_qdrant
from clawdesk.storage.cache import LayeredCache
from schemas import NluResult
from tests.llm.events import skill_result


class CountingKb(KnowledgeBase):
    """The real knowledge base, counting the searches that reach it."""

    searches = 0

    def search(self, *args: Any, **kwargs: Any) -> Any:
        self.searches += 1
        return super().search(*args, **kwargs)


@pytest.fixture()
def services(fake_services: Any, tmp_path) -> Iterator[Any]:
    """The stage's services with a real two-language knowledge base and an L1 cache."""
    src = tmp_path / "kb"
    src.mkdir()
    (src / "en.md").write_text(
        "---\nlang: en\n---\n# Shipping\n## Express delivery\nExpress parcels arrive in 2 days.\n"
    )
    (src / "zh.md").write_text("---\nlang: zh\n---\n# 配送\n## 加急配送\n加急包裹 2 天送达。\n")
    kb = CountingKb(open_qdrant("", tmp_path / "q"), kb_encoder("", MULTILINGUAL_E5))
    kb.sync("demo", [src])
    fake_services.kb = kb
    fake_services.cache = LayeredCache("t", None, l1_ttl_s=60, l2_ttl_s=60)
    yield fake_services
    kb.client.close()


def nlu_result(text: str, language: str) -> NluResult:
    return skill_result(text, language=language, message_id=f"m-{language}").context.nlu


async def test_cached_hits_are_keyed_by_the_customers_language(services: Any) -> None:
    from agents.retrieve import build_context

    text = "express delivery 2 days"
    vector: np.ndarray = services.kb.embedder.encode([text])[0]
    english = await build_context(nlu_result(text, "en"), vector)
    again = await build_context(nlu_result(text, "en"), vector)
    assert services.kb.searches == 1, "the same question in the same language is cached"
    assert again.hits == english.hits
    chinese = await build_context(nlu_result(text, "zh"), vector)
    assert services.kb.searches == 2, "another language is another search"
    assert english.hits[0].doc_id == "en.md"
    assert chinese.hits[0].doc_id == "zh.md"
