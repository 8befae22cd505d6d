"""Time-based splits of the feature frame: train, validate, test, and a rolling backtest.

Labels look ``horizon_days`` ahead of each snapshot, so a row at ``t`` knows what happens
up to ``t + H``. To keep that knowledge out of later windows, a training row is allowed
only when ``t + H <= first validation snapshot`` and a validation row only when
``t + H <= first test snapshot``. The windows are disjoint sets of snapshot dates, so no
account-month of a test window is ever in training.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

import pandas as pd

from training.names import ModelName

LABELS = {ModelName.expansion: "expanded", ModelName.churn: "churned"}


@dataclass(frozen=True)
class Split:
    """Snapshot dates of one train / validation / test split."""

    train: tuple[pd.Timestamp, ...]
    valid: tuple[pd.Timestamp, ...]
    test: tuple[pd.Timestamp, ...]

    @property
    def window(self) -> dict[str, str]:
        """The data window as ISO dates, for logging."""
        return {
            "train_start": self.train[0].date().isoformat(),
            "train_end": self.train[-1].date().isoformat(),
            "valid_start": self.valid[0].date().isoformat(),
            "valid_end": self.valid[-1].date().isoformat(),
            "test_start": self.test[0].date().isoformat(),
            "test_end": self.test[-1].date().isoformat(),
        }


def labelled_snapshots(frame: pd.DataFrame, label: str) -> list[pd.Timestamp]:
    """Sorted snapshot dates whose rows carry a complete label (scoring rows are excluded)."""
    for col in ("as_of", label):
        if col not in frame.columns:
            raise ValueError(f"feature frame: column {col!r} is missing (needed for time-based splits)")
    dates = frame.loc[frame[label].notna(), "as_of"]
    return sorted(pd.to_datetime(dates).unique())


def make_split(
    dates: list[pd.Timestamp], test_start_index: int, horizon_days: int, *, valid_months: int = 2, test_months: int = 1
) -> Split:
    """The split whose test window starts at ``dates[test_start_index]``, with label-horizon gaps before it."""
    horizon = pd.Timedelta(days=horizon_days)
    test = tuple(dates[test_start_index : test_start_index + test_months])
    before_test = [d for d in dates[:test_start_index] if d + horizon <= test[0]]
    valid = tuple(before_test[-valid_months:])
    train = tuple(d for d in dates if valid and d + horizon <= valid[0])
    if len(test) < test_months or len(valid) < valid_months or not train:
        raise ValueError(
            f"feature frame: not enough labelled snapshots for a split testing from {dates[test_start_index].date()} "
            f"(horizon {horizon_days} days needs {valid_months} validation and some training snapshots "
            f"at least {horizon_days} days before each later window; have {len(dates)} labelled snapshot dates)"
        )
    return Split(train=train, valid=valid, test=test)


def backtest_splits(
    frame: pd.DataFrame,
    label: str,
    horizon_days: int,
    *,
    n_cutoffs: int = 3,
    valid_months: int = 2,
    test_months: int = 1,
) -> list[Split]:
    """``n_cutoffs`` splits rolling forward one snapshot at a time; the last one tests the newest window."""
    dates = labelled_snapshots(frame, label)
    newest = len(dates) - test_months
    starts = [newest - i for i in reversed(range(n_cutoffs))]
    if not dates or starts[0] < 1:
        raise ValueError(f"feature frame: {len(dates)} labelled snapshot dates cannot hold {n_cutoffs} cut-offs")
    return [make_split(dates, s, horizon_days, valid_months=valid_months, test_months=test_months) for s in starts]


def rows(frame: pd.DataFrame, dates: tuple[pd.Timestamp, ...], label: str) -> pd.DataFrame:
    """Rows of ``frame`` at the given snapshot dates that carry a label."""
    mask = pd.to_datetime(frame["as_of"]).isin(dates) & frame[label].notna()
    return frame.loc[mask]


def newest_complete_month_end(as_of: dt.date) -> dt.date:
    """The last month end on or before ``as_of`` (``as_of`` itself when it is a month end)."""
    next_day = as_of + dt.timedelta(days=1)
    return as_of if next_day.day == 1 else as_of.replace(day=1) - dt.timedelta(days=1)
