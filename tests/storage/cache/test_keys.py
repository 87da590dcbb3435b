"""Key building: normalised questions, versioned keys, vector encoding."""

from __future__ import annotations

import numpy as np
import pytest

from clawdesk.storage.cache import (
    LayeredCache,
    decode_vector,
    encode_vector,
    normalise_question,
    question_digest,
)


@pytest.mark.parametrize(
    ("asked", "same_as"),
    [
        ("Where is X?", "where is x"),
        ("  Where   is\tmy\norder ?? ", "where is my order"),
        ("WHERE IS MY ORDER!!!", "where is my order"),
        ("where is my order…", "where is my order"),
        ("Ｗｈｅｒｅ ｉｓ Ｘ？", "where is x"),  # full-width letters and question mark
        ("我的订单在哪里？", "我的订单在哪里"),
        ("我的订单在哪里？！", "我的订单在哪里"),
        ("退货政策。", "退货政策"),
        ("　退货　政策 ", "退货 政策"),  # ideographic spaces
        ("能退货吗～", "能退货吗"),
    ],
)
def test_equivalent_questions_share_a_key(asked, same_as):
    assert normalise_question(asked) == same_as
    assert question_digest(asked) == question_digest(same_as)


@pytest.mark.parametrize(
    ("text", "normalised"),
    [
        ("Is 3.5 kg too heavy?", "is 3.5 kg too heavy"),  # inner punctuation stays
        ("What's (ORD-1)?", "what's (ord-1)"),  # closing bracket is not trailing punctuation
        ("运费？多少", "运费?多少"),
    ],
)
def test_only_trailing_punctuation_is_removed(text, normalised):
    assert normalise_question(text) == normalised


def test_different_questions_get_different_digests():
    assert question_digest("where is x") != question_digest("where is y")
    assert len(question_digest("where is x")) == 64


def test_key_parts_cannot_run_into_each_other():
    assert LayeredCache.key("a:b", "c") != LayeredCache.key("a", "b:c")
    assert LayeredCache.key("a%3Ab", "c") != LayeredCache.key("a:b", "c")
    assert LayeredCache.key("retrieval", "demo", 3, "m1") == "retrieval:demo:3:m1"


def test_a_vector_survives_encoding_as_float32():
    vector = np.random.default_rng(0).normal(size=384)
    decoded = decode_vector(encode_vector(vector))
    assert decoded.dtype == np.float32
    np.testing.assert_array_equal(decoded, vector.astype(np.float32))
    decoded[0] = 1.0  # a writable copy, not a view of the decoded bytes


def test_encode_vector_refuses_a_matrix():
    with pytest.raises(ValueError, match="1-D"):
        encode_vector(np.zeros((2, 3)))
