"""N-gram feature blocks: char and word n-grams (save/load) and how blocks combine."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import sparse

from clawdesk.nlu.ngrams import CharNgrams, WordNgrams, combine


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
