"""Syncing a tenant's knowledge base into Qdrant (local mode) and searching it."""

from __future__ import annotations

import pytest

from clawdesk.kb.embeddings import shared_embedder
from clawdesk.kb.encoders import MULTILINGUAL_E5, kb_encoder
from clawdesk.kb.index import KnowledgeBase, open_qdrant


@pytest.fixture(scope="module")
def embedder():
    return shared_embedder("")


def test_reingest_updates_changed_and_removes_deleted_documents(tmp_path, embedder):
    src = tmp_path / "kb"
    src.mkdir()
    (src / "shipping.md").write_text("# Shipping\n## Delivery time\nParcels arrive in 5 days.\n")
    (src / "returns.md").write_text("# Returns\n## Window\nReturn within 30 days.\n")
    kb = KnowledgeBase(open_qdrant("", tmp_path / "q"), embedder)
    first = kb.sync("t1", [src])
    assert (first.added, first.updated, first.removed) == (2, 0, 0)
    v1 = kb.version("t1")

    (src / "shipping.md").write_text("# Shipping\n## Delivery time\nParcels arrive in 9 days.\n")
    (src / "returns.md").unlink()
    second = kb.sync("t1", [src])
    assert (second.added, second.updated, second.removed, second.unchanged) == (0, 1, 1, 0)
    assert kb.version("t1") != v1

    query = "how many days until my parcel arrives"
    hits = kb.search("t1", query, embedder.encode([query])[0].tolist(), 5)
    assert [h.text for h in hits] == ["Parcels arrive in 9 days."]


def test_tenants_are_separate_and_unknown_tenants_raise(tmp_path, embedder):
    src = tmp_path / "kb"
    src.mkdir()
    (src / "faq.jsonl").write_text(
        '{"question": "Do you ship to Japan?", "answer": "Yes, in 7 days.", "lang": "en"}\n'
    )
    kb = KnowledgeBase(open_qdrant("", tmp_path / "q"), embedder)
    kb.sync("a", [src])
    vec = embedder.encode(["ship to japan"])[0].tolist()
    assert kb.search("a", "ship to japan", vec, 3)[0].text == "Yes, in 7 days."
    with pytest.raises(ValueError):
        kb.search("b", "ship to japan", vec, 3)


def test_a_question_to_one_tenant_never_returns_another_tenants_passages(tmp_path, embedder):
    acme, globex = tmp_path / "acme", tmp_path / "globex"
    acme.mkdir()
    globex.mkdir()
    (acme / "faq.jsonl").write_text(
        '{"question": "Do you ship to Japan?", "answer": "Acme ships to Japan in 7 days.",'
        ' "lang": "en"}\n'
    )
    (globex / "faq.jsonl").write_text(
        '{"question": "What are your opening hours?", "answer": "Globex opens at 9.",'
        ' "lang": "en"}\n'
    )
    kb = KnowledgeBase(open_qdrant("", tmp_path / "q"), embedder)
    kb.sync("acme", [acme])
    kb.sync("globex", [globex])
    question = "Do you ship to Japan?"  # Acme's passage, word for word
    vec = embedder.encode([question])[0].tolist()

    hits = kb.search("globex", question, vec, 5)

    assert hits, "the tenant's own passage still ranks"
    assert all("Acme" not in h.text for h in hits)
    assert kb.collection("acme") != kb.collection("globex")
    assert kb.version("acme") != kb.version("globex")


def test_chinese_questions_are_found_by_keywords(tmp_path, embedder):
    src = tmp_path / "kb"
    src.mkdir()
    (src / "zh.md").write_text(
        "---\nlang: zh\n---\n# 退货\n## 退货期限\n签收后30天内可以申请退货。\n"
        "## 运费\n订单满49元包邮。\n"
    )
    kb = KnowledgeBase(open_qdrant("", tmp_path / "q"), embedder)
    kb.sync("z", [src])
    query = "多少钱包邮?"
    top = kb.search("z", query, embedder.encode([query])[0].tolist(), 2)[0]
    assert top.section == "运费"
    assert top.keyword > 0


def test_payload_filters_restrict_both_dense_and_keyword_hits(tmp_path, embedder):
    src = tmp_path / "kb"
    src.mkdir()
    (src / "en.md").write_text(
        "---\nlang: en\ntopic: shipping\n---\n# S\n## Express\nExpress takes 2 days.\n"
    )
    (src / "de.md").write_text(
        "---\nlang: de\ntopic: shipping\n---\n# S\n## Express\nExpress dauert 2 Tage.\n"
    )
    kb = KnowledgeBase(open_qdrant("", tmp_path / "q"), embedder)
    kb.sync("f", [src])
    vec = embedder.encode(["express shipping"])[0].tolist()
    hits = kb.search("f", "express shipping", vec, 5, {"lang": "de"})
    assert [h.doc_id for h in hits] == ["de.md"]
    assert kb.search("f", "express shipping", vec, 5, {"topic": "returns"}) == []


@pytest.fixture(scope="module")
def stack():
    return kb_encoder("", MULTILINGUAL_E5)


ZH_KB = (
    "---\nlang: zh\n---\n# 售后\n## 退货期限是多久?\n签收后30天内可以申请退货。\n"
    "## 运费怎么算?\n订单满49元包邮。\n## 怎么注销账号?\n在账户设置里申请注销。\n"
)


def test_chinese_paraphrases_sharing_no_words_are_found_by_the_multilingual_encoder(
    tmp_path, embedder, stack
):
    src = tmp_path / "kb"
    src.mkdir()
    (src / "zh.md").write_text(ZH_KB)
    english_only = KnowledgeBase(open_qdrant("", tmp_path / "q1"), embedder)
    english_only.sync("z", [src])
    both = KnowledgeBase(open_qdrant("", tmp_path / "q2"), stack)
    both.sync("z", [src])
    for query, section in [
        ("不想再用你们网站了,我的资料能彻底删掉吗", "怎么注销账号?"),
        ("寄过来要花多少邮费?", "运费怎么算?"),
    ]:
        assert english_only.search("z", query, embedder.encode([query])[0].tolist(), 3) == []
        top = both.search("z", query, stack.encode([query])[0].tolist(), 3)[0]
        assert top.section == section
        # `score` stays on the English model's scale (kb_min_score): it read nothing here.
        assert top.score == 0.0


def test_passages_in_the_customers_language_rank_first(tmp_path, stack):
    src = tmp_path / "kb"
    src.mkdir()
    (src / "en.md").write_text(
        "---\nlang: en\n---\n# Shipping\n## Express delivery\nExpress parcels arrive in 2 days.\n"
    )
    (src / "zh.md").write_text("---\nlang: zh\n---\n# 配送\n## 加急配送\n加急包裹 2 天送达。\n")
    kb = KnowledgeBase(open_qdrant("", tmp_path / "q"), stack)
    kb.sync("l", [src])
    query = "express delivery 2 days"
    vec = stack.encode([query])[0].tolist()
    assert [h.doc_id for h in kb.search("l", query, vec, 2, language="en")] == ["en.md", "zh.md"]
    assert [h.doc_id for h in kb.search("l", query, vec, 2, language="zh")] == ["zh.md", "en.md"]
    # Only a preference: a language the KB lacks still gets the best passages.
    assert len(kb.search("l", query, vec, 2, language="de")) == 2


def test_each_encoder_has_its_own_collection(tmp_path, embedder, stack):
    src = tmp_path / "kb"
    src.mkdir()
    (src / "zh.md").write_text(ZH_KB)
    client = open_qdrant("", tmp_path / "q")
    english_only, both = KnowledgeBase(client, embedder), KnowledgeBase(client, stack)
    english_only.sync("t", [src])
    assert both.sync("t", [src]).added == 1, "vectors of another model are never reused"
    assert english_only.collection("t") != both.collection("t")
    query = "寄过来要花多少邮费?"
    assert both.search("t", query, stack.encode([query])[0].tolist(), 1)[0].section == "运费怎么算?"
