"""IntentClassifier: predict/save/load on tiny English+Chinese data, oos threshold."""

from __future__ import annotations

import asyncio
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pytest

from clawdesk.nlu.config import ClassifierConfig, FinetuneConfig
from clawdesk.nlu.labels import OOS
from clawdesk.nlu.model import IntentClassifier
from clawdesk.nlu.prediction import IntentPrediction
from clawdesk.nlu.training.examples import IntentExample
from clawdesk.nlu.training.fit import fit_intent_model

QUERIES = ["I would like a refund", "我要退钱", "where is my parcel", "改一下收货地址"]
EXPECTED = ["refund", "refund", "order_status", "change_address"]


@pytest.fixture(scope="module")
def tuned(tiny_train, tiny_valid) -> IntentClassifier:
    # A couple of fine-tuning steps only: exercises the training loop, stays fast.
    cfg = ClassifierConfig(
        finetune=True,
        finetune_config=FinetuneConfig(epochs=1, max_steps=2, classes_per_batch=3, per_class=2),
    )
    return fit_intent_model(tiny_train, cfg, valid=tiny_valid)


def test_predict_english_and_chinese(tuned: IntentClassifier) -> None:
    preds = tuned.predict(QUERIES)
    assert all(isinstance(p, IntentPrediction) for p in preds)
    # The best in-scope intent must be right; rejection depends on the threshold.
    assert [p.top[0][0] for p in preds] == EXPECTED
    for p in preds:
        assert 0.0 <= p.confidence <= 1.0
        assert len(p.top) == 3
        assert [s for _, s in p.top] == sorted((s for _, s in p.top), reverse=True)
        assert p.confidence == pytest.approx(p.top[0][1])
    assert tuned.info["finetune"]["steps"] == 2
    assert tuned.info["threshold_from"] == "valid"
    assert tuned.info["oos_score"] == "msp+nearest-cosine"
    # "combined" picked its (char, word) n-gram weights on valid, from the configured grid
    sel = tuned.info["ngram_weight_selection"]
    grid = tuned.config.ngram_weight_grid
    assert set(sel["valid_objective"]) == {f"char={c:g},word={w:g}" for c, w in grid}
    chosen = sel["chosen"]
    assert (tuned.config.char_weight, tuned.config.word_weight) == (chosen["char"], chosen["word"])
    key = f"char={chosen['char']:g},word={chosen['word']:g}"
    assert sel["valid_objective"][key] == max(sel["valid_objective"].values())
    # a block the selection switched off is not kept (nor computed at inference)
    assert (tuned.char_ngrams is not None) == (chosen["char"] > 0)
    assert (tuned.word_ngrams is not None) == (chosen["word"] > 0)


def test_threshold_turns_low_confidence_into_oos(tuned: IntentClassifier) -> None:
    old = tuned.threshold
    try:
        tuned.threshold = 1.01
        assert {p.intent for p in tuned.predict(QUERIES)} == {OOS}
        tuned.threshold = 0.0
        assert [p.intent for p in tuned.predict(QUERIES)] == EXPECTED
        # Exactly at a message's in-scope score it is kept; just above, rejected.
        score = float(tuned.in_scope_scores(QUERIES[:1])[0])
        tuned.threshold = score
        assert tuned.predict(QUERIES[:1])[0].intent == "refund"
        tuned.threshold = score + 1e-6
        assert tuned.predict(QUERIES[:1])[0].intent == OOS
    finally:
        tuned.threshold = old


def test_save_load_round_trip(tuned: IntentClassifier, tmp_path) -> None:
    tuned.save(tmp_path / "m")
    loaded = IntentClassifier.load(tmp_path / "m")
    assert loaded.classes == tuned.classes
    assert loaded.threshold == tuned.threshold
    assert loaded.encoder is not None and loaded.encoder.finetuned
    # Half the tiny training set is Chinese: "auto" added the multilingual block
    assert tuned.multilingual is not None and loaded.multilingual is not None
    assert loaded.multilingual.name == tuned.multilingual.name
    a = tuned.predict_proba(QUERIES)
    b = loaded.predict_proba(QUERIES)
    np.testing.assert_allclose(a, b, atol=1e-5)
    assert [p.intent for p in loaded.predict(QUERIES)] == [p.intent for p in tuned.predict(QUERIES)]


def test_empty_batch(tuned: IntentClassifier) -> None:
    assert tuned.predict([]) == []


def test_predict_from_threads(tuned: IntentClassifier) -> None:
    # The service calls predict from an executor; concurrent calls must give the same
    # answers as sequential ones.
    want = [p.intent for p in tuned.predict(QUERIES)]
    with ThreadPoolExecutor(max_workers=4) as pool:
        results = list(pool.map(lambda _: [p.intent for p in tuned.predict(QUERIES)], range(8)))
    assert all(r == want for r in results)


def test_apredict_from_event_loop(tuned: IntentClassifier) -> None:
    async def main() -> list[list[str]]:
        results = await asyncio.gather(*(tuned.apredict(QUERIES) for _ in range(3)))
        return [[p.intent for p in r] for r in results]

    want = [p.intent for p in tuned.predict(QUERIES)]
    assert asyncio.run(main()) == [want] * 3


def test_char_only_classifier_with_oos_class(tiny_train, tmp_path) -> None:
    # No encoder at all: char n-grams alone, plus an explicit oos class in training.
    train = [
        *tiny_train,
        IntentExample(text="tell me a joke", intent=OOS),
        IntentExample(text="讲个笑话", intent=OOS),
        IntentExample(text="what is the weather", intent=OOS),
    ]
    clf = fit_intent_model(train, ClassifierConfig(features="char", threshold=0.0))
    assert clf.encoder is None
    assert OOS in clf.classes and OOS not in clf.intents
    preds = clf.predict(["讲个笑话", "我要退款"])
    assert preds[0].intent == OOS  # the head's own oos class wins
    assert preds[1].intent == "refund"
    assert all(t[0] != OOS for p in preds for t in p.top)  # top lists in-scope intents
    clf.save(tmp_path / "c")
    loaded = IntentClassifier.load(tmp_path / "c")
    np.testing.assert_allclose(
        loaded.predict_proba(["我要退款"]), clf.predict_proba(["我要退款"]), atol=1e-6
    )


def test_char_and_word_ngrams_save_load(tiny_train, tmp_path) -> None:
    cfg = ClassifierConfig(features="char", char_weight=1.0, word_weight=0.5, threshold=0.0)
    clf = fit_intent_model(tiny_train, cfg)
    assert clf.char_ngrams is not None and clf.word_ngrams is not None
    assert clf.coef is not None
    assert clf.coef.shape[1] == clf.char_ngrams.n_features + clf.word_ngrams.n_features
    clf.save(tmp_path / "w")
    loaded = IntentClassifier.load(tmp_path / "w")
    assert loaded.word_ngrams is not None
    texts = ["refund my order please", "我要改地址"]
    np.testing.assert_allclose(loaded.predict_proba(texts), clf.predict_proba(texts), atol=1e-6)
