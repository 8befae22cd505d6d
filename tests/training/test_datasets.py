"""Time-based splits: label horizons never reach into later windows; windows are disjoint."""

from __future__ import annotations

import datetime as dt

import pandas as pd
import pytest

from features.spine import month_ends
from training.datasets import (
    backtest_splits,
    make_split,
    newest_complete_month_end,
    rows,
)


@pytest.mark.parametrize("horizon_days", [30, 90, 120])
def test_no_label_horizon_overlaps_a_later_window(make_frame, horizon_days):
    frame = make_frame(accounts=20, months=24, horizon_months=4)
    horizon = pd.Timedelta(days=horizon_days)
    splits = backtest_splits(frame, "expanded", horizon_days, n_cutoffs=4)
    assert len(splits) == 4
    for split in splits:
        assert max(split.train) + horizon <= min(split.valid)
        assert max(split.valid) + horizon <= min(split.test)
        train_keys = set(map(tuple, rows(frame, split.train, "expanded")[["account_id", "as_of"]].to_numpy()))
        test_keys = set(map(tuple, rows(frame, split.test, "expanded")[["account_id", "as_of"]].to_numpy()))
        assert train_keys and test_keys and not train_keys & test_keys


def test_backtest_rolls_forward_and_ends_at_the_newest_labelled_month(make_frame):
    frame = make_frame(accounts=10, months=18)
    splits = backtest_splits(frame, "expanded", 90, n_cutoffs=3)
    tests = [s.test[0] for s in splits]
    assert tests == sorted(tests) and len(set(tests)) == 3
    newest_labelled = frame.loc[frame["expanded"].notna(), "as_of"].max()
    assert splits[-1].test[-1] == newest_labelled
    assert all(frame.loc[frame["as_of"].isin(s.train), "expanded"].notna().all() for s in splits)


def test_too_few_snapshots_is_a_clear_error(make_frame):
    frame = make_frame(accounts=10, months=7)
    with pytest.raises(ValueError, match="not enough labelled snapshots|cannot hold"):
        backtest_splits(frame, "expanded", 90, n_cutoffs=3)


def test_missing_label_column_is_named():
    with pytest.raises(ValueError, match="'churned'"):
        backtest_splits(pd.DataFrame({"as_of": []}), "churned", 90)


def test_month_end_helpers():
    assert newest_complete_month_end(dt.date(2025, 3, 31)) == dt.date(2025, 3, 31)
    assert newest_complete_month_end(dt.date(2025, 3, 30)) == dt.date(2025, 2, 28)
    assert month_ends(dt.date(2025, 1, 15), dt.date(2025, 3, 31)) == [
        dt.date(2025, 1, 31), dt.date(2025, 2, 28), dt.date(2025, 3, 31)]


def test_make_split_uses_dates_not_positions():
    # Jan 31 + 90 days is May 1, so April 30 may not be a test start for a January validation row.
    dates = list(pd.date_range("2024-01-31", periods=12, freq="ME"))
    split = make_split(dates, dates.index(pd.Timestamp("2024-10-31")), 90, valid_months=1)
    assert split.valid == (pd.Timestamp("2024-07-31"),)
    assert max(split.train) == pd.Timestamp("2024-04-30")
