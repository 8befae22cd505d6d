"""Assemble the feature frame: spine + labels + every feature family, as one Ibis expression.

``feature_table`` is backend-neutral: it takes Ibis tables from any backend (DuckDB by
default, DataFusion or PySpark for others) and returns one expression. Results reach
pandas only in ``build_features``, one row per account and snapshot.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Iterable

import ibis
import pandas as pd
from ibis.expr.types import Table

from features.account import account_features, account_starts, within_tenure
from features.adoption import adoption_features, feature_use_30d, first_use
from features.calendar import Calendar
from features.config import Settings
from features.contract import REQUIRED_TABLES, TABLES
from features.data_end import DataEnd, complete_data_end
from features.engagement import engagement_features
from features.io import DataError, DataSource, require_tables
from features.labels import LABELS, labels
from features.movements import movements
from features.deals import pipeline_features
from features.plans import run_planned
from features.registry import categorical_features, feature_names, signal_names
from features.spine import active_periods, snapshot_days, spine, to_day
from features.usage import daily_usage, near_quota_rows, usage_between, usage_features, usage_limits
from features.usage_pass import daily_from_pass, first_use_from_pass, key_use_from_pass, raw_usage_pass
from features.whitespace import whitespace_features

KEYS = ["account_id", "as_of_day"]
#: The feature frame's row order.
ORDER = ["as_of", "account_id"]
# Context columns travel with each row for the serving layer (a CSM's book) but are not model features.
CONTEXT = ("csm_owner",)


def check_columns(tables: dict[str, Table]) -> None:
    """Raise DataError naming every contract column missing from a present table."""
    missing = [
        f"{name}.{col}"
        for name, table in tables.items()
        if name in TABLES
        for col in TABLES[name].column_names
        if col not in table.columns
    ]
    if missing:
        raise DataError(f"missing column(s) required by the data contract: {', '.join(missing)}")
    absent = [t for t in REQUIRED_TABLES if t not in tables]
    if absent:
        raise DataError(f"missing required table(s): {', '.join(absent)}")


def tables_from_backend(backend: ibis.BaseBackend, present: Iterable[str]) -> dict[str, Table]:
    """Ibis tables for the canonical tables a backend holds."""
    return {name: backend.table(name) for name in present if name in TABLES}


def usage_span(tables: dict[str, Table]) -> tuple[dt.date, dt.date]:
    """The first and the last ``usage_daily`` date: where the data begins and ends."""
    usage = tables["usage_daily"]
    span = usage.aggregate(first=usage.date.min().cast("date"), last=usage.date.max().cast("date")).execute()
    first, last = span["first"].iloc[0], span["last"].iloc[0]
    if first is None or pd.isna(first) or last is None or pd.isna(last):
        raise DataError("usage_daily is empty: cannot tell where the data begins or ends (pass data_end)")
    return pd.Timestamp(first).date(), pd.Timestamp(last).date()


def data_end_of(tables: dict[str, Table]) -> DataEnd:
    """Where the data ends: the newest ``usage_daily`` day, or the last complete one before a partly loaded newest day."""
    return complete_data_end(tables["usage_daily"], usage_span(tables)[1])


def default_data_end(tables: dict[str, Table]) -> dt.date:
    """The last date the data covers: the last complete ``usage_daily`` day (``features.data_end``)."""
    return data_end_of(tables).day


def _as_is(table: Table) -> Table:
    return table


def feature_table(
    tables: dict[str, Table],
    as_of_dates: Iterable[dt.date],
    settings: Settings,
    data_end: dt.date,
    materialize: Callable[[Table], Table] = _as_is,
    signals: bool = False,
    labels: bool = True,
    raw_pass: bool = False,
) -> Table:
    """One Ibis expression: ``account_id, as_of``, the label columns (``labels``), then every registry feature.

    ``materialize`` is applied to shared intermediates (spine, periods, daily usage) and
    to each family; ``Table.cache`` makes the engine compute each once instead of
    inlining them into one large query, which ran about twice as slowly on DuckDB.

    ``raw_pass`` reads raw usage once for its three shapes (``features.usage_pass``, tested
    equal to the reference); the default runs the reference definitions, three reads, which
    measured faster and smaller on DuckDB (``benchmarks/README.md``, "One raw pass").
    """
    cal = Calendar.of(as_of_dates, data_end)
    return calendar_feature_table(tables, cal, settings, materialize, signals, labels, raw_pass).order_by(ORDER)


def calendar_feature_table(
    tables: dict[str, Table], cal: Calendar, settings: Settings, materialize: Callable[[Table], Table] = _as_is,
    signals: bool = False, labels: bool = True, raw_pass: bool = False,
) -> Table:
    """``feature_table`` over a calendar (``features.calendar``), rows in no particular order."""
    check_columns(tables)
    snaps = cal.snapshots
    snap_days = snaps.select("as_of_day")
    subs = tables["subscriptions"]
    base = materialize(spine(subs, snaps))
    periods = materialize(active_periods(subs, snaps))
    products, plan_features = tables.get("products"), tables.get("plan_features")
    usage = usage_between(tables["usage_daily"], None, cal.last)
    if raw_pass:
        # One scan of raw usage; its daily rows are read in place (by two steps), the per-key rows reduced once.
        day_map, seg_snaps = cal.key_segments
        one_pass = materialize(raw_usage_pass(usage, to_day(cal.first), day_map))
        daily = daily_from_pass(one_pass)
        used = materialize(key_use_from_pass(one_pass, seg_snaps))
        first = materialize(first_use_from_pass(one_pass))
    else:
        # The reference: raw usage read three times, each into a small result: per account and
        # day, per account, snapshot and feature key (30 days), and per account and key (first use).
        recent = usage_between(tables["usage_daily"], cal.first, cal.last)
        daily = materialize(daily_usage(recent))
        used = materialize(feature_use_30d(recent, snap_days))
        first = materialize(first_use(usage))
    limits = materialize(usage_limits(periods))
    near = materialize(near_quota_rows(daily, limits, snap_days, settings))
    # Labels and account history both read the revenue movements: compute them once.
    moves = materialize(movements(subs, products))
    parts = [
        *([_labels_keyed(subs, base, settings, cal.end, products, moves)] if labels else []),
        usage_features(daily, used, near, base, limits, cal.window_segments, settings),
        adoption_features(used, first, base, periods, snap_days, plan_features, products),
        engagement_features(base, tables, snap_days),
        whitespace_features(base, tables["accounts"], periods, products, settings),
        account_features(base, tables["accounts"], periods, moves, subs, snaps),
        pipeline_features(base, tables, snap_days, settings.opportunity_stages),
    ]
    t = base.select("account_id", "as_of", "as_of_day")
    for part in parts:
        t = t.left_join(materialize(part), KEYS)
    t = t.left_join(materialize(account_starts(subs, first, snap_days)), KEYS)
    names = feature_names() + (signal_names() if signals else [])  # signals: the alert signals after the features
    return t.select("account_id", "as_of", *CONTEXT, *(LABELS if labels else ()), **within_tenure(t, names))


def _labels_keyed(
    subs: Table, base: Table, settings: Settings, data_end: dt.date, products: Table | None, moves: Table
) -> Table:
    lab = labels(subs, base, settings.horizon_days, data_end, products, moves)
    keyed = lab.join(base.select("account_id", "as_of", "as_of_day"), ["account_id", "as_of"])
    return keyed.select(*KEYS, *LABELS)


def label_frame(
    source: DataSource, as_of_dates: Iterable[dt.date], settings: Settings, data_end: dt.date, *,
    tables: dict[str, Table] | None = None,
) -> pd.DataFrame:
    """``account_id, as_of`` and the label columns for every spine row at the dates, as ``build_features`` has them.

    Labels look past the as-of up to the data end, so a stored snapshot keeps the features
    alone and the labels are read afresh (from subscriptions only) on every build. ``tables``:
    ``source.tables()`` when the caller has them already (each costs a schema query).
    """
    tables = tables or source.tables()
    check_columns(tables)
    subs, products = tables["subscriptions"], tables.get("products")

    def make(cal: Calendar, materialize: Callable[[Table], Table]) -> Table:
        base = spine(subs, cal.snapshots)
        keyed = _labels_keyed(subs, base, settings, cal.end, products, movements(subs, products))
        return keyed.join(base.select(*KEYS, "as_of"), KEYS).select("account_id", "as_of", *LABELS)

    dates = snapshot_days(as_of_dates)
    return to_frame(run_planned(source, tables, settings, {"frame": "labels"}, make, dates, data_end).to_pandas())


def to_frame(result: pd.DataFrame) -> pd.DataFrame:
    """Normalise dtypes of an executed feature table: dates as datetime64, categoricals and context as strings, the rest float.

    Columns are converted in place (callers pass a fresh result) and only when their
    dtype differs, so a large frame is not copied again; rows keep the engine's order.
    """
    frame = result
    frame["account_id"] = frame["account_id"].astype("string")
    frame["as_of"] = pd.to_datetime(frame["as_of"])
    cats = set(categorical_features()) | set(CONTEXT)
    for col in frame.columns:
        if col in cats:
            frame[col] = frame[col].astype("string")
        elif col not in ("account_id", "as_of") and frame[col].dtype != "float64":
            frame[col] = pd.to_numeric(frame[col], errors="coerce").astype("float64")
    return frame.reset_index(drop=True)


def build_features(
    source: DataSource, as_of_dates: Iterable[dt.date], settings: Settings, data_end: dt.date | None = None,
    snapshots_per_batch: int | None = None, signals: bool = False, *, labels: bool = True, raw_pass: bool = False,
    tables: dict[str, Table] | None = None,
) -> pd.DataFrame:
    """The feature frame for every account with MRR > 0 at each date: keys, context, labels (null when the horizon is incomplete) and features.

    ``labels=False`` leaves the label columns out (the snapshot store reads them apart, ``label_frame``);
    ``raw_pass=True`` reads raw usage in one pass instead of the reference's three (``feature_table``).

    ``snapshots_per_batch`` builds that many snapshot dates at a time and concatenates
    the results, bounding the engine's working set on large companies (each batch reads
    raw usage again, so small companies are faster in one batch). ``tables``: ``source.tables()``
    when the caller has them already.
    """
    require_tables(source)
    tables = tables or source.tables()
    end = data_end or default_data_end(tables)
    dates = snapshot_days(as_of_dates)
    size = snapshots_per_batch or len(dates)
    if size < 1:
        raise ValueError(f"snapshots_per_batch must be at least 1, got {snapshots_per_batch}")
    frames = [_build_batch(source, tables, dates[i:i + size], settings, end, signals, labels, raw_pass)
              for i in range(0, len(dates), size)]
    return frames[0] if len(frames) == 1 else pd.concat(frames, ignore_index=True)


def _build_batch(
    source: DataSource, tables: dict[str, Table], dates: list[dt.date], settings: Settings, data_end: dt.date,
    signals: bool = False, labels: bool = True, raw_pass: bool = False,
) -> pd.DataFrame:
    def make(cal: Calendar, materialize: Callable[[Table], Table]) -> Table:
        return calendar_feature_table(tables, cal, settings, materialize, signals, labels, raw_pass)

    options = {"frame": "features", "signals": signals, "labels": labels, "raw_pass": raw_pass}
    # Through Arrow: ``Backend.execute`` spent ~1 s on per-column conversion of a 142k x 66
    # frame that ``to_frame`` normalises anyway; Arrow then pandas took ~0.1 s.
    return to_frame(run_planned(source, tables, settings, options, make, dates, data_end, ORDER).to_pandas())


def feature_sql(
    source: DataSource, as_of_dates: Iterable[dt.date], settings: Settings, dialect: str = "duckdb",
    data_end: dt.date | None = None,
) -> str:
    """The SQL an engine receives for the feature table, for review (``dialect``: duckdb, pyspark, datafusion, ...)."""
    require_tables(source)
    tables = source.tables()
    end = data_end or default_data_end(tables)
    return ibis.to_sql(feature_table(tables, list(as_of_dates), settings, end), dialect=dialect)
