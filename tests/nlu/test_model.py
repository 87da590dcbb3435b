"""IntentClassifier: train/predict/save/load on tiny English+Chinese data, oos threshold."""

from __future__ import annotations

import asyncio
import dataclasses
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pytest

from clawdesk.nlu.model import (
    OOS,
    ClassifierConfig,
    IntentClassifier,
    IntentExample,
    IntentPrediction,
    choose_threshold,
    wilson_lower_bound,
)
from clawdesk.nlu.training.features import FinetuneConfig

QUERIES = ["I would like a refund", "我要退钱", "where is my parcel", "改一下收货地址"]
EXPECTED = ["refund", "refund", "order_status", "change_address"]


@pytest.fixture(scope="module")
def tuned(tiny_train, tiny_valid) -> IntentClassifier:
    # A couple of fine-tuning steps only: exercises the training loop, stays fast.
    cfg = ClassifierConfig(
        finetune=True,
        finetune_config=FinetuneConfig(epochs=1, max_steps=2, classes_per_batch=3, per_class=2),
    )
    return IntentClassifier(cfg).fit(tiny_train, valid=tiny_valid)


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
    clf = IntentClassifier(ClassifierConfig(features="char", threshold=0.0)).fit(train)
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
    clf = IntentClassifier(cfg).fit(tiny_train)
    assert clf.char_ngrams is not None and clf.word_ngrams is not None
    assert clf.coef is not None
    assert clf.coef.shape[1] == clf.char_ngrams.n_features + clf.word_ngrams.n_features
    clf.save(tmp_path / "w")
    loaded = IntentClassifier.load(tmp_path / "w")
    assert loaded.word_ngrams is not None
    texts = ["refund my order please", "我要改地址"]
    np.testing.assert_allclose(loaded.predict_proba(texts), clf.predict_proba(texts), atol=1e-6)


def test_weight_selection_with_required_oos_recall(tiny_train, tiny_valid) -> None:
    # Without an encoder fine-tune (fast): the grid is searched, and the threshold must
    # reject enough validation oos rows for the Wilson bound; with 3 oos rows no
    # threshold can show 0.5 with 95 % confidence, so every oos row is rejected.
    cfg = ClassifierConfig(finetune=False, min_oos_recall=0.5)
    clf = IntentClassifier(cfg).fit(tiny_train, valid=tiny_valid)
    assert len(clf.info["ngram_weight_selection"]["valid_objective"]) == len(cfg.ngram_weight_grid)
    oos_texts = [e.text for e in tiny_valid if e.intent == OOS]
    assert {p.intent for p in clf.predict(oos_texts)} == {OOS}


def test_threshold_by_cross_validation_without_valid(tiny_train) -> None:
    cfg = ClassifierConfig(features="char")
    clf = IntentClassifier(cfg).fit(tiny_train)
    assert clf.info["threshold_from"].endswith("cross-validation on train")
    assert 0.0 < clf.threshold < 1.0


def test_fit_rejects_single_intent() -> None:
    with pytest.raises(ValueError):
        IntentClassifier(ClassifierConfig(features="char")).fit(
            [IntentExample(text="a", intent="x"), IntentExample(text="b", intent="x")]
        )


def test_example_validation() -> None:
    with pytest.raises(ValueError):
        IntentExample(text="  ", intent="x")


def test_config_round_trip() -> None:
    cfg = ClassifierConfig(features="embedding", C=3.0, ngram_range=(1, 3))
    cfg.finetune_config = dataclasses.replace(cfg.finetune_config, epochs=2.5)
    again = ClassifierConfig.from_dict({**cfg.to_dict(), "unknown_future_key": 1})
    assert again == cfg


class TestChooseThreshold:
    def test_separable(self) -> None:
        # in-scope correct rows score high, oos rows low: a threshold between them wins
        scores = np.array([0.9, 0.8, 0.7, 0.3, 0.2])
        correct = np.array([True, True, True, False, False])
        is_oos = np.array([False, False, False, True, True])
        t = choose_threshold(scores, correct, is_oos)
        assert 0.3 < t <= 0.7

    def test_trade_off_is_balanced(self) -> None:
        # One oos row above every in-scope row: rejecting it would cost all in-scope.
        scores = np.array([0.6, 0.6, 0.6, 0.99, 0.1])
        correct = np.array([True, True, True, False, False])
        is_oos = np.array([False, False, False, True, True])
        t = choose_threshold(scores, correct, is_oos)
        assert 0.1 < t <= 0.6

    def test_without_oos_keeps_share(self) -> None:
        scores = np.linspace(0.01, 1.0, 100)
        t = choose_threshold(scores, np.ones(100, bool), np.zeros(100, bool), in_scope_keep=0.9)
        assert np.mean(scores >= t) == pytest.approx(0.9, abs=0.011)

    def test_target_oos_recall(self) -> None:
        scores = np.array([0.9, 0.8, 0.7, 0.6, 0.5, 0.4, 0.3, 0.2])
        correct = np.array([True, True, True, True, False, False, False, False])
        is_oos = np.array([False, False, False, False, True, True, True, True])
        scores[4] = 0.85  # one oos row scores high
        t_bal = choose_threshold(scores, correct, is_oos)
        t_all = choose_threshold(scores, correct, is_oos, target_oos_recall=1.0)
        t_75 = choose_threshold(scores, correct, is_oos, target_oos_recall=0.75)
        assert 0.4 < t_bal <= 0.6 and t_75 == t_bal  # 3 of 4 oos rows rejected
        assert 0.85 < t_all <= 0.9  # catching the last oos row costs 3 in-scope rows

    def test_min_oos_recall_asks_for_a_margin(self) -> None:
        # 100 oos rows scoring 0.00..0.99, 100 correct in-scope rows at 1.0
        scores = np.concatenate([np.arange(100) / 100, np.ones(100)])
        correct = np.concatenate([np.zeros(100, bool), np.ones(100, bool)])
        is_oos = np.concatenate([np.ones(100, bool), np.zeros(100, bool)])
        t_obs = choose_threshold(scores, correct, is_oos, target_oos_recall=0.85)
        t_conf = choose_threshold(scores, correct, is_oos, min_oos_recall=0.85)
        assert np.mean(scores[:100] < t_obs) == pytest.approx(0.85)
        recall = np.mean(scores[:100] < t_conf)
        # 0.85 observed is not enough: the 95 % lower bound of 90/100 is still below 0.85
        assert recall == pytest.approx(0.91)
        assert wilson_lower_bound(np.array([91]), 100)[0] >= 0.85
        assert wilson_lower_bound(np.array([90]), 100)[0] < 0.85

    def test_wilson_bound_matches_known_value(self) -> None:
        # 8 of 10 at z = 1.645: centre 0.7361, half-width 0.1953 (Wilson score interval)
        assert wilson_lower_bound(np.array([8]), 10)[0] == pytest.approx(0.5408, abs=1e-3)

    def test_keep_all_means_no_rejection(self) -> None:
        scores = np.array([0.2, 0.5, 0.9])
        t = choose_threshold(scores, np.ones(3, bool), np.zeros(3, bool), in_scope_keep=1.0)
        assert t == 0.0

    def test_needs_in_scope(self) -> None:
        with pytest.raises(ValueError):
            choose_threshold(np.array([0.5]), np.array([False]), np.array([True]))
