"""Time-based splits of the feature frame: the pooled rolling-origin backtest and the history floor.

Labels look ``horizon_days`` ahead of each snapshot, so a row at ``t`` knows what happens
up to ``t + H``. A fold tests one labelled month end ``T`` (the cut-off) and trains on every
labelled snapshot ``t`` with ``t + H <= T``: exactly what a monthly job run at ``T`` could
have seen. Training and test are disjoint sets of snapshot dates, so no account-month of a
test window is ever in training, and no training label reaches past the cut-off.

The cut-off rolls forward over every labelled month once ``MIN_TRAIN_MONTHS`` training
snapshots exist before it. Fewer than ``MIN_CUTOFFS`` cut-offs is refused (the pooled
figures would rest on one or two months); fewer than ``WARN_CUTOFFS`` trains with a warning.
With a 90-day horizon that means about 11 months of data at the least, and a warning up
to about 14.

Every labelled month is tested, but at size not every month needs a model of its own: when
the folds' training sets would hold more than a budget of rows in all
(``Settings.backtest_fit_rows``), consecutive test months are grouped in blocks that share
the fit of the block's first month (:func:`shared_fits`). A month then meets a model up to
a few months older than a monthly job would have used, never a newer one, so the figures
lean cautious; small and mid-sized books (all folds within the budget)
keep one fit per month.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

import pandas as pd

from training.names import ModelName

LABELS = {ModelName.expansion: "expanded", ModelName.churn: "churned"}
MIN_TRAIN_MONTHS = 3
MIN_CUTOFFS = 3
WARN_CUTOFFS = 6


class HistoryError(ValueError):
    """The data holds too little labelled history to train and test a model honestly."""


@dataclass(frozen=True)
class Fold:
    """One cut-off of the pooled backtest: the training snapshots and the test month end."""

    train: tuple[pd.Timestamp, ...]
    test: pd.Timestamp

    @property
    def window(self) -> dict[str, str]:
        """The data window as ISO dates, for logging."""
        return {
            "train_start": self.train[0].date().isoformat(),
            "train_end": self.train[-1].date().isoformat(),
            "test_start": self.test.date().isoformat(),
            "test_end": self.test.date().isoformat(),
        }


def labelled_snapshots(frame: pd.DataFrame, label: str) -> list[pd.Timestamp]:
    """Sorted snapshot dates whose rows carry a complete label (scoring rows are excluded)."""
    for col in ("as_of", label):
        if col not in frame.columns:
            raise ValueError(f"feature frame: column {col!r} is missing (needed for time-based splits)")
    dates = frame.loc[frame[label].notna(), "as_of"]
    return sorted(pd.to_datetime(dates).unique())


def folds_for(dates: list[pd.Timestamp], horizon_days: int, min_train_months: int = MIN_TRAIN_MONTHS) -> list[Fold]:
    """Every fold over ``dates`` (sorted labelled snapshots) with at least ``min_train_months`` training snapshots."""
    horizon = pd.Timedelta(days=horizon_days)
    out = []
    for test in dates:
        train = tuple(d for d in dates if d + horizon <= test)
        if len(train) >= min_train_months:
            out.append(Fold(train=train, test=test))
    return out


def shared_fits(folds: list[Fold], rows_at: dict[pd.Timestamp, int], budget: int | None) -> list[Fold]:
    """``folds`` with consecutive test months sharing one training set when their fits would exceed ``budget`` rows.

    The block size is the smallest that keeps the rows of all distinct fits within the budget
    (``rows_at``: labelled rows per snapshot date). Each fold of a block trains on the snapshots
    of the block's first (oldest) test month, so no fold sees more than its own cut-off allows.
    """
    if budget is None or not folds:
        return folds

    def fit_rows(block: int) -> int:
        return sum(sum(rows_at.get(d, 0) for d in folds[i].train) for i in range(0, len(folds), block))

    block = next((b for b in range(1, len(folds) + 1) if fit_rows(b) <= budget), len(folds))
    return [Fold(train=folds[i - i % block].train, test=f.test) for i, f in enumerate(folds)]


def pooled_folds(
    frame: pd.DataFrame, label: str, horizon_days: int, *,
    min_train_months: int = MIN_TRAIN_MONTHS, min_cutoffs: int = MIN_CUTOFFS, name: str | None = None,
    fit_rows: int | None = None,
) -> list[Fold]:
    """The rolling-origin folds of ``label``; HistoryError naming what is missing below the floor.

    ``fit_rows``: the most training rows all distinct fits may hold (:func:`shared_fits`); None for one fit per month.
    """
    dates = labelled_snapshots(frame, label)
    folds = folds_for(dates, horizon_days, min_train_months)
    if len(folds) < min_cutoffs:
        missing = min_cutoffs - len(folds)
        raise HistoryError(
            f"{name or label}: not enough labelled history. {len(dates)} month end(s) have a complete "
            f"{horizon_days}-day label; with at least {min_train_months} training month(s) ending {horizon_days} days "
            f"before each test month, {len(folds)} month end(s) can be tested and {min_cutoffs} are needed: "
            f"add {missing} more month(s) of history"
        )
    if fit_rows is None:
        return folds
    labelled = frame.loc[frame[label].notna(), "as_of"]
    return shared_fits(folds, pd.to_datetime(labelled).value_counts().to_dict(), fit_rows)


def history_warning(folds: list[Fold], name: str, warn_cutoffs: int = WARN_CUTOFFS) -> str | None:
    """A plain-words warning when few cut-offs back the figures, else None."""
    if len(folds) >= warn_cutoffs:
        return None
    return (f"{name}: only {len(folds)} test month(s) (cut-offs) in this history; every figure carries a wide "
            f"interval, read it before the point estimate ({warn_cutoffs} or more cut-offs narrow it)")


def rows(frame: pd.DataFrame, dates: tuple[pd.Timestamp, ...] | pd.Timestamp, label: str) -> pd.DataFrame:
    """Rows of ``frame`` at the given snapshot date(s) that carry a label."""
    wanted = (dates,) if isinstance(dates, pd.Timestamp) else dates
    mask = pd.to_datetime(frame["as_of"]).isin(wanted) & frame[label].notna()
    return frame.loc[mask]


def cut_at(frame: pd.DataFrame, cutoff: pd.Timestamp, horizon_days: int, labels: tuple[str, ...]) -> pd.DataFrame:
    """The frame as a job run at ``cutoff`` would see it: snapshots up to it, labels null unless complete by it.

    Features at ``t <= cutoff`` do not depend on later data (the point-in-time guarantee),
    and a label over ``(t, t + H]`` is complete, and equal to the full data's, when ``t + H <= cutoff``.
    """
    as_of = pd.to_datetime(frame["as_of"])
    out = frame.loc[as_of <= cutoff].copy()
    open_horizon = (as_of[as_of <= cutoff] + pd.Timedelta(days=horizon_days)) > cutoff
    for col in labels:
        if col in out.columns:
            out.loc[open_horizon, col] = float("nan")
    return out


def newest_complete_month_end(as_of: dt.date) -> dt.date:
    """The last month end on or before ``as_of`` (``as_of`` itself when it is a month end)."""
    next_day = as_of + dt.timedelta(days=1)
    return as_of if next_day.day == 1 else as_of.replace(day=1) - dt.timedelta(days=1)
