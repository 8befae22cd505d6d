"""The spine: one (account_id, as_of) row per account with MRR > 0 at each snapshot date.

Training and scoring differ only in their spine: month ends over history for training,
a single date (today, chosen by the entry point) for scoring. Dates travel through the
feature expressions as integer day numbers (days since 1970-01-01) because plain
integer arithmetic and comparisons compile the same way on every Ibis backend, whereas
date differences do not (DataFusion has no rule for ``DateDelta``).
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable

import ibis
import pandas as pd
from ibis.expr.types import Table, Value

from features.movements import account_mrr_at
from features.portable import named_memtable

EPOCH = dt.date(1970, 1, 1)
SECONDS_PER_DAY = 86_400


def to_day(value: dt.date) -> int:
    """Day number of a date (days since 1970-01-01)."""
    return (value - EPOCH).days


def day_number(column: Value) -> Value:
    """Day number of a date or timestamp column; a timestamp counts on the day it falls in."""
    return (column.cast("date").cast("timestamp").epoch_seconds() // SECONDS_PER_DAY).cast("int64")


def month_ends(start: dt.date, end: dt.date) -> list[dt.date]:
    """Every month-end date in [start, end]."""
    if end < start:
        raise ValueError(f"snapshot range is empty: start {start} is after end {end}")
    return [d.date() for d in pd.date_range(start, end, freq="ME")]


def snapshot_days(as_of_dates: Iterable[dt.date]) -> list[dt.date]:
    """The distinct snapshot dates, sorted; raises ValueError when there are none."""
    dates = sorted({pd.Timestamp(d).date() for d in as_of_dates})
    if not dates:
        raise ValueError("as_of_dates is empty: give at least one snapshot date")
    return dates


def snapshot_frame(as_of_dates: Iterable[dt.date]) -> pd.DataFrame:
    """The snapshot dates as a small frame: ``as_of``, ``as_of_day``, ``as_of_month`` (1-12) and ``as_of_180d_ago``."""
    dates = snapshot_days(as_of_dates)
    return pd.DataFrame(
        {
            "as_of": pd.to_datetime(pd.Series(dates)).astype("datetime64[s]"),
            "as_of_day": pd.Series([to_day(d) for d in dates], dtype="int64"),
            "as_of_month": pd.Series([d.month for d in dates], dtype="int64"),
            "as_of_180d_ago": pd.to_datetime(pd.Series([d - dt.timedelta(days=180) for d in dates])).astype(
                "datetime64[s]"
            ),
        }
    )


def snapshots(as_of_dates: Iterable[dt.date], name: str | None = None) -> Table:
    """The snapshot dates as an Ibis memtable (runs on whichever backend executes the expression); ``name``: its table name."""
    frame = snapshot_frame(as_of_dates)
    return named_memtable(frame, name).mutate(
        as_of=ibis._.as_of.cast("date"), as_of_180d_ago=ibis._.as_of_180d_ago.cast("date")
    )


def subscription_periods(subscriptions: Table) -> Table:
    """Subscriptions with integer ``from_day`` / ``to_day`` (``to_day`` null while current)."""
    return subscriptions.mutate(
        from_day=day_number(subscriptions.valid_from),
        to_day=day_number(subscriptions.valid_to),
        renewal_day=day_number(subscriptions.renewal_date),
    )


def active_periods(subscriptions: Table, snaps: Table) -> Table:
    """Subscription periods in force at each snapshot: ``valid_from <= as_of < valid_to``.

    Only rows that started on or before ``as_of`` can match, so periods starting later
    (and any edit to an end date that lies after ``as_of``) never reach a feature.
    """
    periods = subscription_periods(subscriptions)
    joined = periods.join(
        snaps,
        [periods.from_day <= snaps.as_of_day, periods.to_day.isnull() | (periods.to_day > snaps.as_of_day)],
    )
    return joined.select(
        "account_id", "product_id", "plan", "seats", "mrr", "usage_limit", "renewal_day",
        "as_of", "as_of_day", "as_of_month",
    )


def spine(subscriptions: Table, snaps: Table) -> Table:
    """One row per account with MRR > 0 at each snapshot: ``account_id, as_of, as_of_day, as_of_month, mrr, seats, products_owned``."""
    mrr = account_mrr_at(subscriptions, snaps.select("as_of"))
    mrr = mrr.filter(mrr.mrr > 0)
    joined = mrr.join(snaps, "as_of")
    return joined.select(
        "account_id", "as_of", "as_of_day", "as_of_month",
        mrr=joined.mrr.cast("float64"),
        seats=joined.seats.cast("float64"),
        products_owned=joined.products_owned.cast("float64"),
    )
