"""Pooled rolling-origin folds: no test account-month in training, labels never past the cut-off, the history floor."""

from __future__ import annotations

import datetime as dt

import pandas as pd
import pytest

from features.spine import month_ends
from training.datasets import (
    MIN_CUTOFFS, MIN_TRAIN_MONTHS, WARN_CUTOFFS, HistoryError, cut_at, history_warning, newest_complete_month_end,
    pooled_folds, rows,
)


@pytest.mark.parametrize("horizon_days", [30, 90, 120])
def test_no_test_account_month_is_ever_in_training_and_no_label_passes_the_cutoff(make_frame, horizon_days):
    frame = make_frame(accounts=20, months=24, horizon_months=4)
    horizon = pd.Timedelta(days=horizon_days)
    folds = pooled_folds(frame, "expanded", horizon_days)
    assert len(folds) >= MIN_CUTOFFS
    for fold in folds:
        assert max(fold.train) + horizon <= fold.test  # every training outcome is known at the cut-off
        assert len(fold.train) >= MIN_TRAIN_MONTHS
        train_keys = set(map(tuple, rows(frame, fold.train, "expanded")[["account_id", "as_of"]].to_numpy()))
        test_keys = set(map(tuple, rows(frame, fold.test, "expanded")[["account_id", "as_of"]].to_numpy()))
        assert train_keys and test_keys and not train_keys & test_keys


def test_cutoffs_roll_over_every_labelled_month_once_the_minimum_span_exists(make_frame):
    frame = make_frame(accounts=10, months=18)
    folds = pooled_folds(frame, "expanded", 90)
    labelled = sorted(frame.loc[frame["expanded"].notna(), "as_of"].unique())
    tests = [f.test for f in folds]
    # Every labelled month end from the first with three training months 90 days before it, in order, once.
    first = next(d for d in labelled if sum(t + pd.Timedelta(days=90) <= d for t in labelled) >= MIN_TRAIN_MONTHS)
    assert tests == [d for d in labelled if d >= first]
    assert all(f.train == tuple(d for d in labelled if d + pd.Timedelta(days=90) <= f.test) for f in folds)


def test_over_the_fit_budget_months_share_the_oldest_fit_of_their_block_and_every_month_is_tested(make_frame):
    frame = make_frame(accounts=40, months=24)
    per_month = pooled_folds(frame, "expanded", 90)
    labelled = frame.loc[frame["expanded"].notna(), "as_of"].value_counts()
    all_rows = sum(int(labelled[list(f.train)].sum()) for f in per_month)
    assert pooled_folds(frame, "expanded", 90, fit_rows=all_rows) == per_month  # within the budget: one fit per month
    budget = all_rows // 3
    shared = pooled_folds(frame, "expanded", 90, fit_rows=budget)
    assert [f.test for f in shared] == [f.test for f in per_month]  # every month still tested, once, in order
    fits = list(dict.fromkeys(f.train for f in shared))
    assert 1 < len(fits) < len(per_month)
    assert sum(int(labelled[list(t)].sum()) for t in fits) <= budget
    for fold, own in zip(shared, per_month):
        # a shared fit is an older month's training set: never newer than the month's own cut-off allows
        assert set(fold.train) <= set(own.train) and fold.train[0] == own.train[0]
        assert max(fold.train) + pd.Timedelta(days=90) <= fold.test
    # the block is the smallest that fits: one month fewer per block would exceed the budget
    block = sum(1 for f in shared if f.train == shared[0].train)
    smaller = [per_month[i].train for i in range(0, len(per_month), block - 1)]
    assert sum(int(labelled[list(t)].sum()) for t in smaller) > budget


def test_below_the_floor_the_error_names_what_is_missing(make_frame):
    # 7 labelled month ends (Jan-Jul); Jun 30 and Jul 31 are the only ones with 3 training months 90 days before.
    frame = make_frame(accounts=10, months=10)
    with pytest.raises(HistoryError, match=r"expansion: not enough labelled history\. 7 month end\(s\).*2 month end\(s\) "
                       r"can be tested and 3 are needed: add 1 more month\(s\) of history"):
        pooled_folds(frame, "expanded", 90, name="expansion")


def test_short_history_trains_with_a_warning(make_frame):
    frame = make_frame(accounts=10, months=13)
    folds = pooled_folds(frame, "expanded", 90)
    assert MIN_CUTOFFS <= len(folds) < WARN_CUTOFFS
    assert "wide interval" in history_warning(folds, "expansion")
    assert history_warning(pooled_folds(make_frame(accounts=10, months=24), "expanded", 90), "expansion") is None


def test_missing_label_column_is_named():
    with pytest.raises(ValueError, match="'churned'"):
        pooled_folds(pd.DataFrame({"as_of": []}), "churned", 90)


def test_cut_at_hides_snapshots_after_and_outcomes_beyond_the_cutoff(make_frame):
    frame = make_frame(accounts=5, months=14)
    cutoff = pd.Timestamp("2024-09-30")
    cut = cut_at(frame, cutoff, 90, ("expanded", "churned"))
    assert cut["as_of"].max() == cutoff
    labelled = cut.loc[cut["expanded"].notna(), "as_of"]
    assert labelled.max() + pd.Timedelta(days=90) <= cutoff
    assert cut.loc[cut["as_of"] == pd.Timestamp("2024-06-30"), "expanded"].notna().all()  # outcome complete on Sep 28
    assert cut.loc[cut["as_of"] == pd.Timestamp("2024-07-31"), "expanded"].isna().all()  # outcome runs to Oct 29
    kept = cut["expanded"].notna()
    pd.testing.assert_series_equal(cut.loc[kept, "expanded"], frame.loc[cut.index[kept], "expanded"])


def test_month_end_helpers():
    assert newest_complete_month_end(dt.date(2025, 3, 31)) == dt.date(2025, 3, 31)
    assert newest_complete_month_end(dt.date(2025, 3, 30)) == dt.date(2025, 2, 28)
    assert month_ends(dt.date(2025, 1, 15), dt.date(2025, 3, 31)) == [
        dt.date(2025, 1, 31), dt.date(2025, 2, 28), dt.date(2025, 3, 31)]
