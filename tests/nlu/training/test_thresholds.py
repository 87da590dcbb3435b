"""choose_threshold and the Wilson bound behind a required oos recall."""

from __future__ import annotations

import numpy as np
import pytest

from clawdesk.nlu.training.thresholds import choose_threshold, wilson_lower_bound


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
