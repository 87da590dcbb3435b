"""The knowledge base's encoders: the packaged multilingual model reads Chinese, and a
stack of encoders gives one concatenated vector per text."""

from __future__ import annotations

import numpy as np
import pytest

from clawdesk.kb.embeddings import shared_embedder
from clawdesk.kb.encoders import (
    MULTILINGUAL_E5,
    EncoderStack,
    MultilingualE5,
    encode_passages,
    kb_encoder,
    members,
)


@pytest.fixture(scope="module")
def e5() -> MultilingualE5:
    encoder = kb_encoder("", MULTILINGUAL_E5)
    assert isinstance(encoder, EncoderStack)
    second = encoder.members[1].encoder
    assert isinstance(second, MultilingualE5)
    return second


def test_multilingual_model_matches_a_chinese_question_to_its_answer(e5):
    question = e5.encode(["东西收到二十多天了,现在还能退吗?"])[0]
    headings = encode_passages(e5, ["退货期限是多久?", "运费怎么算?", "怎么注销账号?"])
    sims = headings @ question
    assert int(np.argmax(sims)) == 0
    assert e5.known_share("退货") == 1.0
    assert np.allclose(np.linalg.norm(headings, axis=1), 1.0, atol=1e-3)


def test_query_and_passage_sides_differ(e5):
    # E5 embeds with a `query: ` or `passage: ` prefix; the two must not be the same call.
    assert not np.allclose(e5.encode(["运费"])[0], e5.encode_passages(["运费"])[0])


def test_a_stack_concatenates_its_members_vectors(e5):
    stack = kb_encoder("", MULTILINGUAL_E5)
    minilm = shared_embedder("")
    texts = ["where is my parcel", "包裹到哪了"]
    both = stack.encode(texts)
    first, second = members(stack)
    assert stack.dimension == minilm.dimension + e5.dimension == both.shape[1]
    assert np.allclose(both[:, first.start : first.end], minilm.encode(texts), atol=1e-5)
    assert np.allclose(both[:, second.start : second.end], e5.encode(texts), atol=1e-5)
    assert stack.version == f"{minilm.version}+{e5.version}"
    assert stack.known_share("包裹到哪了") == 1.0 > minilm.known_share("包裹到哪了")


def test_a_single_encoder_is_its_own_only_member():
    minilm = kb_encoder("", "")
    (only,) = members(minilm)
    assert (only.key, only.start, only.end) == ("", 0, minilm.dimension)


def test_passage_vectors_are_kept_on_disk_across_processes(tmp_path):
    first = MultilingualE5(tmp_path)
    texts = ["签收后30天内可以申请退货。", "订单满49元包邮。"]
    vecs = first.encode_passages(texts)
    files = sorted((tmp_path / first.version).glob("*.npy"))
    assert len(files) == 2
    # A second encoder (another worker) reads them instead of embedding again: a
    # vector planted in the cache is what it returns.
    planted = np.full(first.dimension, 0.5, dtype=np.float32)
    np.save(files[0], planted)
    again = MultilingualE5(tmp_path).encode_passages(texts)
    assert sum(np.allclose(row, planted) for row in again) == 1
    # A file cut short (a crash mid-write) is embedded again, not trusted.
    files[0].write_bytes(b"\x93NUMPY")
    assert np.allclose(MultilingualE5(tmp_path).encode_passages(texts), vecs, atol=1e-6)
