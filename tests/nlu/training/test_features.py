"""Feature blocks: char n-grams (save/load), combination, contrastive batch planning."""

from __future__ import annotations

import random

import numpy as np
import pytest
from scipy import sparse

from clawdesk.nlu.training.features import (
    CharNgrams,
    FinetuneConfig,
    WordNgrams,
    _plan_batches,
    _supcon_loss,
    auto_epochs,
    combine,
)


def test_char_ngrams_chinese_and_english_round_trip(tmp_path) -> None:
    texts = ["我要退款", "退款申请", "where is my order", "order status"]
    cn = CharNgrams((1, 3)).fit(texts)
    x = cn.transform(texts)
    assert x.shape == (4, cn.n_features)
    # rows are unit vectors, and the two refund texts share n-grams ("退款")
    np.testing.assert_allclose(sparse.linalg.norm(x, axis=1), 1.0, rtol=1e-5)
    assert (x[0] @ x[1].T).toarray()[0, 0] > 0
    cn.save(tmp_path)
    again = CharNgrams.load(tmp_path)
    np.testing.assert_allclose(again.transform(texts).toarray(), x.toarray(), atol=1e-6)


def test_word_ngrams_bigrams_and_round_trip(tmp_path) -> None:
    texts = ["top up failed", "top up pending", "card arrived", "a card"]
    wn = WordNgrams().fit(texts)
    vocab = wn.vectorizer.vocabulary_
    assert "top up" in vocab and "a" in vocab  # bigrams, and one-letter words kept
    x = wn.transform(texts)
    np.testing.assert_allclose(sparse.linalg.norm(x, axis=1), 1.0, rtol=1e-5)
    wn.save(tmp_path)
    CharNgrams((1, 2)).fit(texts).save(tmp_path)  # both blocks share a directory
    again = WordNgrams.load(tmp_path)
    np.testing.assert_allclose(again.transform(texts).toarray(), x.toarray(), atol=1e-6)
    assert CharNgrams.load(tmp_path).n_features != again.n_features


def test_combine_weights_blocks() -> None:
    emb = np.array([[0.6, 0.8]], dtype=np.float32)
    chars = sparse.csr_matrix(np.array([[1.0, 0.0, 0.0]], dtype=np.float32))
    x = combine(emb, chars, embedding_weight=2.0, char_weight=0.5).toarray()
    np.testing.assert_allclose(x, [[1.2, 1.6, 0.5, 0.0, 0.0]], rtol=1e-6)
    assert combine(emb, None).shape == (1, 2)
    words = sparse.csr_matrix(np.array([[0.0, 1.0]], dtype=np.float32))
    x = combine(emb, chars, word_features=words, word_weight=0.25).toarray()
    np.testing.assert_allclose(x, [[0.6, 0.8, 1.0, 0.0, 0.0, 0.0, 0.25]], rtol=1e-6)
    # a zero weight leaves its block out instead of adding zero columns
    assert combine(emb, chars, char_weight=0.0).shape == (1, 2)
    with pytest.raises(ValueError):
        combine(None, None)


def test_plan_batches_distinct_intents_and_coverage() -> None:
    by_label = {f"i{k}": [f"t{k}_{j}" for j in range(5)] for k in range(7)}
    by_label["single"] = ["lonely"]
    cfg = FinetuneConfig(classes_per_batch=4, per_class=2)
    batches = _plan_batches(by_label, cfg, random.Random(0))
    seen: set[str] = set()
    for batch in batches:
        labels = [group[0].split("_")[0] for group in batch]
        assert len(labels) == len(set(labels))  # one group per intent per batch
        assert 2 <= len(batch) <= 4
        assert all(len(group) == 2 for group in batch)
        seen.update(t for group in batch for t in group)
    assert "lonely" not in seen  # one example cannot be its own positive
    assert len(seen) >= 7 * 5 - 2  # (nearly) every example used once per epoch


def test_supcon_loss_prefers_clustered_embeddings() -> None:
    import torch

    ids = torch.tensor([0, 0, 1, 1])
    good = torch.nn.functional.normalize(
        torch.tensor([[1.0, 0.0], [0.99, 0.1], [0.0, 1.0], [0.1, 0.99]]), dim=-1
    )
    bad = good[[0, 2, 1, 3]]
    assert float(_supcon_loss(good, ids, 0.1)) < float(_supcon_loss(bad, ids, 0.1))


def test_auto_epochs() -> None:
    assert auto_epochs(770) == 5.0
    assert auto_epochs(15000) == 1.0


def test_finetune_settings_parse_by_field_type() -> None:
    base = FinetuneConfig(epochs=3.0)
    cfg = base.with_settings(
        ["lr=1e-4", "per-class=3", "freeze_word_embeddings=false", "epochs=none", "bf16=yes"]
    )
    assert (cfg.lr, cfg.per_class, cfg.freeze_word_embeddings) == (1e-4, 3, False)
    assert cfg.epochs is None and cfg.bf16 is True
    assert isinstance(cfg.per_class, int)
    assert base.lr == 5e-5 and base.epochs == 3.0  # a copy; the original is untouched
    assert base.with_settings([]) == base


@pytest.mark.parametrize(
    ("setting", "message"),
    [
        ("lr", "not KEY=VALUE"),
        ("=1", "not KEY=VALUE"),
        ("learning_rate=1e-4", "known: bf16"),
        ("lr=fast", "valid number"),
        ("per_class=2.5", "valid integer"),
        ("freeze_word_embeddings=maybe", "valid boolean"),
        ("lr=nan", ">= 0"),
        ("epochs=-1", ">= 0"),
        ("lr=none", "valid number"),  # only optional fields can be cleared
    ],
)
def test_finetune_settings_refuse_bad_input(setting: str, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        FinetuneConfig().with_settings([setting])
