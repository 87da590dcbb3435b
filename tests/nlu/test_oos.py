"""Out-of-scope scoring: nearest-neighbour cosine, score fusion, and how the classifier
uses them (in-scope bank, held-out training oos rows in calibration, persistence)."""

from __future__ import annotations

import json

import numpy as np
import pytest

from clawdesk.nlu.confidence import temper
from clawdesk.nlu.config import ClassifierConfig
from clawdesk.nlu.labels import OOS
from clawdesk.nlu.model import IntentClassifier
from clawdesk.nlu.oos import ScoreFusion, msp_parts, nearest_cosine
from clawdesk.nlu.persistence import KNN_BANK_FILE
from clawdesk.nlu.training.examples import IntentExample
from clawdesk.nlu.training.fit import fit_intent_model
from clawdesk.nlu.training.oos_calibration import score_train_oos

TRAIN_OOS = [
    IntentExample(text="tell me a joke", intent=OOS),
    IntentExample(text="sing me a song", intent=OOS),
    IntentExample(text="what is the capital of France", intent=OOS),
    IntentExample(text="明天天气怎么样", intent=OOS),
    IntentExample(text="play some music", intent=OOS),
]
QUERIES = ["I would like a refund", "我要退钱", "where is my parcel", "how tall is mount everest"]


def _unit(rows: np.ndarray) -> np.ndarray:
    return rows / np.linalg.norm(rows, axis=1, keepdims=True)


def test_nearest_cosine_matches_brute_force_across_chunks() -> None:
    rng = np.random.default_rng(1)
    queries = _unit(rng.normal(size=(2500, 16))).astype(np.float32)  # > one chunk
    bank = _unit(rng.normal(size=(40, 16))).astype(np.float32)
    got = nearest_cosine(queries, bank)
    np.testing.assert_allclose(got, (queries @ bank.T).max(axis=1), atol=1e-6)
    # a query that is in the bank finds itself
    assert nearest_cosine(bank[:3], bank) == pytest.approx([1.0, 1.0, 1.0], abs=1e-6)
    with pytest.raises(ValueError, match="empty"):
        nearest_cosine(queries, bank[:0])


def test_fusion_standardises_each_score_and_stays_a_probability_scale() -> None:
    msp = np.array([0.9, 0.7, 0.5])
    cos = np.array([0.8, 0.6, 0.7])
    fusion = ScoreFusion.fit(msp, cos)
    # the mean row of both scores sits at the middle of the scale
    assert fusion(np.array([msp.mean()]), np.array([cos.mean()]))[0] == pytest.approx(0.5)
    # one standard deviation up in one score and down in the other cancel out
    up_down = fusion(np.array([msp.mean() + msp.std()]), np.array([cos.mean() - cos.std()]))
    assert up_down[0] == pytest.approx(0.5)
    # monotone in each score over its whole range, and on a probability scale
    probs, cosines = np.linspace(0, 1, 11), np.linspace(-1, 1, 11)
    assert np.all(np.diff(fusion(probs, np.full(11, 0.7))) > 0)
    assert np.all(np.diff(fusion(np.full(11, 0.7), cosines)) > 0)
    fused = fusion(probs, cosines)
    assert np.all((fused >= 0) & (fused <= 1))
    assert ScoreFusion.from_dict(json.loads(json.dumps(fusion.to_dict()))) == fusion


def test_fusion_survives_a_score_without_spread() -> None:
    fusion = ScoreFusion.fit(np.ones(4), np.array([0.2, 0.4, 0.6, 0.8]))
    scores = fusion(np.ones(4), np.array([0.2, 0.4, 0.6, 0.8]))
    assert np.all(np.isfinite(scores)) and np.all(np.diff(scores) > 0)
    with pytest.raises(ValueError):
        ScoreFusion.fit(np.ones(3), np.ones(2))


@pytest.fixture(scope="module")
def with_train_oos(tiny_train, tiny_valid) -> IntentClassifier:
    # Frozen encoder: the fusion and calibration are under test here, not fine-tuning
    # (nor the multilingual block, which test_multilingual covers).
    cfg = ClassifierConfig(finetune=False, oos_crossfit_folds=5, multilingual="")
    return fit_intent_model([*tiny_train, *TRAIN_OOS], cfg, valid=tiny_valid)


def test_bank_holds_the_in_scope_training_examples(with_train_oos, tiny_train) -> None:
    clf = with_train_oos
    assert clf.encoder is not None and clf.knn_bank is not None
    want = clf.encoder.encode([e.text for e in tiny_train])
    np.testing.assert_allclose(clf.knn_bank, want, atol=1e-5)  # no oos row among them


def test_threshold_applies_to_the_fused_score(with_train_oos) -> None:
    clf = with_train_oos
    assert clf.fusion is not None and clf.info["oos_score"] == "msp+nearest-cosine"
    assert clf.encoder is not None and clf.knn_bank is not None
    preds = clf.predict(QUERIES)
    # confidence is the (tempered) probability of the best in-scope intent; the fused
    # score is made of the head's own, untempered one
    assert all(p.confidence == pytest.approx(p.top[0][1]) for p in preds)
    msp = _untempered_msp(clf)
    np.testing.assert_allclose(
        [p.confidence for p in preds],
        msp_parts(temper(clf.predict_proba(QUERIES), clf.temperature), clf.classes, OOS)[0],
        atol=1e-6,
    )
    cos = (clf.encoder.encode(QUERIES) @ clf.knn_bank.T).max(axis=1)
    fused = clf.fusion(msp, cos)
    np.testing.assert_allclose(clf.in_scope_scores(QUERIES), fused, atol=1e-5)
    head_oos = np.asarray(clf.classes)[clf.predict_proba(QUERIES).argmax(axis=1)] == OOS
    old = clf.threshold
    try:
        # A threshold between the fused scores: the messages below it, and only those
        # (besides the head's own oos picks), are rejected.
        clf.threshold = float(np.median(fused))
        want = head_oos | (fused < clf.threshold)
        assert 0 < want.sum() < len(QUERIES)
        assert [p.intent == OOS for p in clf.predict(QUERIES)] == want.tolist()
    finally:
        clf.threshold = old


def test_training_oos_rows_join_calibration_scored_by_heads_that_never_saw_them(
    with_train_oos, tiny_train
) -> None:
    clf = with_train_oos
    assert clf.info["threshold_from"] == "valid + held-out train oos"
    at = clf.info["valid_at_threshold"]
    assert at["n_heldout_train_oos"] == len(TRAIN_OOS)
    assert 0.0 <= at["heldout_train_oos_recall"] <= 1.0
    # Cross-fitting: each oos row is scored by a head trained without it, so the head
    # gives it less oos probability than the full head (which learnt it) does; and the
    # full head is left as it was.
    train = [*tiny_train, *TRAIN_OOS]
    texts, labels = [e.text for e in train], [e.intent for e in train]
    assert clf.encoder is not None
    embeddings = clf.encoder.encode(texts)
    coef = None if clf.coef is None else clf.coef.copy()
    held = score_train_oos(clf, texts, labels, embeddings)
    assert held is not None
    probs, cos = held
    assert clf.coef is not None and coef is not None
    np.testing.assert_array_equal(clf.coef, coef)
    k = clf.classes.index(OOS)
    seen = clf.predict_proba([e.text for e in TRAIN_OOS])[:, k]
    assert probs[:, k].mean() < seen.mean() - 0.05
    assert cos is not None and np.all(cos < 0.999)  # the bank holds no oos row


def test_save_load_keeps_bank_and_fusion(with_train_oos, tmp_path) -> None:
    clf = with_train_oos
    clf.save(tmp_path / "m")
    assert (tmp_path / "m" / KNN_BANK_FILE).exists()
    loaded = IntentClassifier.load(tmp_path / "m")
    assert loaded.fusion == clf.fusion
    np.testing.assert_allclose(
        loaded.in_scope_scores(QUERIES), clf.in_scope_scores(QUERIES), atol=1e-6
    )
    assert [p.intent for p in loaded.predict(QUERIES)] == [p.intent for p in clf.predict(QUERIES)]


def _untempered_msp(clf: IntentClassifier) -> np.ndarray:
    """The head's own best in-scope probability of each query (what the oos score uses)."""
    return msp_parts(clf.predict_proba(QUERIES), clf.classes, OOS)[0]


def test_a_fused_model_without_its_bank_fails_to_load(with_train_oos, tmp_path) -> None:
    d = with_train_oos.save(tmp_path / "m")
    (d / KNN_BANK_FILE).unlink()
    with pytest.raises(ValueError, match="incomplete"):
        IntentClassifier.load(d)


def test_model_saved_before_the_fusion_still_scores_by_probability(
    with_train_oos, tmp_path
) -> None:
    d = with_train_oos.save(tmp_path / "old")
    (d / KNN_BANK_FILE).unlink()
    meta = json.loads((d / "classifier.json").read_text())
    del meta["fusion"]
    (d / "classifier.json").write_text(json.dumps(meta))
    old = IntentClassifier.load(d)
    assert old.fusion is None and old.knn_bank is None
    scores = old.in_scope_scores(QUERIES)
    np.testing.assert_allclose(scores, _untempered_msp(old), atol=1e-6)


def test_without_fusion_the_probability_decides(tiny_train, tiny_valid, tmp_path) -> None:
    cfg = ClassifierConfig(finetune=False, knn_fusion=False)
    clf = fit_intent_model(tiny_train, cfg, valid=tiny_valid)
    assert clf.knn_bank is None and clf.fusion is None and clf.info["oos_score"] == "msp"
    assert clf.info["threshold_from"] == "valid"  # no oos rows in train to add
    np.testing.assert_allclose(clf.in_scope_scores(QUERIES), _untempered_msp(clf), atol=1e-6)
    assert not (clf.save(tmp_path / "m") / KNN_BANK_FILE).exists()


def test_cross_validated_threshold_uses_the_fusion(tiny_train) -> None:
    clf = fit_intent_model([*tiny_train, *TRAIN_OOS], ClassifierConfig(finetune=False))
    assert clf.info["threshold_from"].endswith("cross-validation on train")
    assert clf.info["oos_score"] == "msp+nearest-cosine" and clf.fusion is not None
    # Standardised on held-out folds: had a row found itself in the bank, every
    # in-scope cosine would be 1 and the spread 0 (replaced by 1).
    assert clf.fusion.cos_mean < 0.99 and clf.fusion.cos_sd != 1.0
    assert 0.0 < clf.threshold < 1.0


def test_a_fixed_threshold_keeps_no_bank(tiny_train, tmp_path) -> None:
    clf = fit_intent_model(tiny_train, ClassifierConfig(finetune=False, threshold=0.3))
    assert clf.fusion is None and clf.knn_bank is None
    assert not (clf.save(tmp_path / "m") / KNN_BANK_FILE).exists()


def test_msp_parts_reads_the_best_in_scope_intent_beside_the_oos_column() -> None:
    probs = np.array([[0.2, 0.5, 0.3], [0.6, 0.1, 0.3]])
    scores, best, head_oos = msp_parts(probs, ["billing", OOS, "refund"], OOS)
    np.testing.assert_allclose(scores, [0.3, 0.6])
    assert best.tolist() == ["refund", "billing"]
    assert head_oos.tolist() == [True, False]
    # without an oos class nothing is the head's oos pick
    _, _, none_oos = msp_parts(probs, ["a", "b", "c"], OOS)
    assert not none_oos.any()
