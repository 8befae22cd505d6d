"""Evaluation metrics on small frames whose answers can be worked out by hand."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from training.baseline import BaselineClassifier
from training.evaluate import (
    average_precision, evaluate, expected_calibration_error, precision_top_of_books, roc_auc, top_fraction_stats,
)


class FixedScores:
    """A scorer returning the frame's own ``score`` column (one value per row, as TrainedModel does)."""

    def predict_proba(self, frame: pd.DataFrame) -> np.ndarray:
        return frame["score"].to_numpy()


def test_ece_is_zero_when_bins_match_observed_rates():
    scores = np.array([0.25] * 4 + [0.75] * 4)
    y = np.array([1, 0, 0, 0, 1, 1, 1, 0])
    assert expected_calibration_error(y, scores) == pytest.approx(0.0)
    assert expected_calibration_error(y, np.full(8, 0.95)) == pytest.approx(0.45)


def test_top_decile_precision_and_lift():
    y = np.array([1] + [0] * 9 + [1] * 0 + [0] * 10, dtype=float)  # 1 positive in 20
    scores = np.linspace(1, 0, 20)
    precision, lift = top_fraction_stats(y, scores)
    assert precision == 0.5 and lift == pytest.approx(10.0)


def test_precision_in_the_top_of_each_book_takes_a_share_of_each_book_and_averages_over_books():
    books = np.array([0] * 10 + [1] * 4)
    y = np.array([1, 1, 0, 0, 0, 0, 0, 0, 0, 0] + [0, 1, 1, 1], dtype=float)
    scores = np.r_[np.linspace(1, 0, 10), np.linspace(1, 0, 4)]
    # book 0: top 20 % of 10 = 2 rows, both positive (1.0); book 1: top ceil(0.8) = 1 row, negative (0.0).
    assert precision_top_of_books(y, scores, books, share=0.2) == pytest.approx(0.5)
    # A book smaller than 1 / share still contributes its single best account.
    assert precision_top_of_books(y[10:], scores[10:], books[10:], share=0.2) == 0.0


def test_ranking_metrics_match_scikit_learn_with_ties():
    from sklearn.metrics import average_precision_score, roc_auc_score

    rng = np.random.default_rng(1)
    y = (rng.random(300) < 0.2).astype(float)
    scores = np.round(rng.random(300) + 0.3 * y, 1)  # coarse scores: many ties
    assert roc_auc(y, scores) == pytest.approx(roc_auc_score(y, scores))
    assert average_precision(y, scores) == pytest.approx(average_precision_score(y, scores))
    assert np.isnan(roc_auc(np.zeros(5), np.arange(5.0)))


def test_evaluate_reports_overall_and_per_segment(small_frame):
    frame = small_frame[small_frame["expanded"].notna()].copy()
    frame["score"] = frame["expanded"] * 0.8 + 0.1  # a perfect ranker
    ev = evaluate(FixedScores(), frame, "expanded")
    assert ev.metrics["roc_auc"] == 1.0 and ev.metrics["pr_auc"] == 1.0
    assert set(ev.per_segment["segment"]) == {"smb", "mid_market", "enterprise"}
    assert (ev.per_segment["roc_auc"] == 1.0).all()
    baseline = evaluate(BaselineClassifier("expansion").fit(frame), frame, "expanded")
    assert baseline.metrics["rows"] == ev.metrics["rows"] and baseline.metrics["roc_auc"] < 1.0


def test_unlabelled_rows_are_refused(small_frame):
    with pytest.raises(ValueError, match="'expanded' has nulls"):
        evaluate(BaselineClassifier("expansion").fit(small_frame), small_frame, "expanded")


def test_gains_curve_finds_every_positive_and_beats_random_for_a_perfect_ranking():
    import numpy as np
    import pandas as pd

    from training.evaluate import Evaluation, gains_curve

    y = np.array([0, 1, 0, 0, 1, 0, 0, 0, 0, 1], dtype=float)
    perfect = Evaluation({}, pd.DataFrame(), scores=y + np.linspace(0, 0.1, 10), y_true=y)
    share_worked, share_found = gains_curve(perfect)
    assert share_worked[-1] == 1.0 and share_found[-1] == 1.0
    assert share_found[2] == 1.0  # the three positives sit at the top
    assert np.all(np.diff(share_found) >= 0)


def test_auc_within_snapshots_counts_only_pairs_of_the_same_snapshot():
    from sklearn.metrics import roc_auc_score

    from training.evaluate import roc_auc

    rng = np.random.default_rng(3)
    strata = rng.integers(0, 6, 2400)
    y = (rng.random(2400) < 0.1).astype(float)
    scores = np.round(rng.random(2400) + 0.4 * y + 0.3 * strata, 2)  # ties, and a level that moves by snapshot
    weighted = weights = 0.0
    for k in range(6):
        m = strata == k
        pairs = y[m].sum() * (m.sum() - y[m].sum())
        weighted, weights = weighted + roc_auc_score(y[m], scores[m]) * pairs, weights + pairs
    assert roc_auc(y, scores, strata) == pytest.approx(weighted / weights)
    assert roc_auc(y, scores, np.zeros(2400, dtype=int)) == pytest.approx(roc_auc_score(y, scores))


def test_a_level_that_lags_the_base_rate_cannot_move_the_auc_within_snapshots():
    """Outcomes at random within each month; the scorer's level per month falls as the rate rises.

    Pooled over months the AUC drops well below 0.5 although nothing is ranked; within
    months it is 0.5 up to noise, whatever the level does.
    """
    from training.evaluate import roc_auc

    rng = np.random.default_rng(4)
    rates = np.array([0.05, 0.08, 0.11, 0.14, 0.17, 0.20])
    strata = np.repeat(np.arange(6), 4000)
    y = (rng.random(len(strata)) < rates[strata]).astype(float)
    scores = -rates[strata] + rng.normal(0, 0.01, len(strata))
    assert roc_auc(y, scores) < 0.4
    assert abs(roc_auc(y, scores, strata) - 0.5) < 0.02


def test_auc_within_strata_and_top_of_books_match_pair_counting_for_scores_crowded_at_the_top():
    rng = np.random.default_rng(11)
    n = 300
    strata, books = rng.integers(0, 3, n), rng.integers(0, 12, n)
    y = (rng.random(n) < 0.3).astype(float)
    scores = 1.0 - np.round(rng.random(n), 2) * 1e-9  # distinct values a hair apart, with ties
    wins = pairs = 0.0
    for s in range(3):
        pos, neg = scores[(strata == s) & (y == 1)], scores[(strata == s) & (y == 0)]
        diff = pos[:, None] - neg[None, :]
        wins += (diff > 0).sum() + 0.5 * (diff == 0).sum()
        pairs += diff.size
    assert roc_auc(y, scores, strata) == pytest.approx(wins / pairs, abs=1e-12)
    by_book = []
    for b in np.unique(books):
        rows = np.flatnonzero(books == b)
        top = rows[np.argsort(-scores[rows], kind="stable")][: max(1, int(np.ceil(len(rows) * 0.2)))]
        by_book.append(y[top].mean())
    assert precision_top_of_books(y, scores, books, 0.2) == pytest.approx(np.mean(by_book), abs=1e-12)
