"""Net and gross revenue retention, and the rates around them, over periods and account groups.

The pure core (``nrr_pct``, ``grr_pct``, ``rate_pct``, ``benchmark_band``,
``period_bounds``) is plain Python. ``period_metrics`` builds one Ibis expression over the
subscriptions (via ``features.movements``), runs it in the backend and only post-processes
the small aggregated frame in pandas. Definitions and conventions: ``docs/metrics.md``.
"""

from __future__ import annotations

import datetime as dt
import math
from dataclasses import dataclass

import ibis
import ibis.expr.types as ir
import pandas as pd

from features.io import DataSource
from features.movements import account_mrr_at, movements

PERIODS = ("month", "quarter", "year", "ttm")
GROUPINGS = ("segment", "industry", "channel", "cohort")
BANDS = ((120.0, "world_class"), (100.0, "strong"), (90.0, "needs_improvement"))
_PERIOD_MONTHS = {"month": 1, "quarter": 3, "year": 12, "ttm": 12}


def nrr_pct(starting: float, expansion: float, contraction: float, churn: float) -> float:
    """Net revenue retention in percent: (starting + expansion - contraction - churn) / starting x 100."""
    if not starting > 0:
        raise ValueError(f"starting MRR must be > 0 to compute NRR, got {starting}")
    return (starting + expansion - contraction - churn) / starting * 100.0


def grr_pct(starting: float, contraction: float, churn: float) -> float:
    """Gross revenue retention in percent: (starting - contraction - churn) / starting x 100, capped at 100."""
    if not starting > 0:
        raise ValueError(f"starting MRR must be > 0 to compute GRR, got {starting}")
    return min(100.0, (starting - contraction - churn) / starting * 100.0)


def rate_pct(amount: float, starting: float) -> float:
    """A movement as a percent of starting MRR (expansion, contraction or churn rate)."""
    if not starting > 0:
        raise ValueError(f"starting MRR must be > 0 to compute a rate, got {starting}")
    return amount / starting * 100.0


def benchmark_band(nrr: float | None) -> str | None:
    """Band of an NRR in percent: world_class >= 120, strong 100-120, needs_improvement 90-100, critical < 90."""
    if nrr is None or math.isnan(nrr):
        return None
    return next((name for floor, name in BANDS if nrr >= floor), "critical")


def _add_months(day: dt.date, months: int) -> dt.date:
    index = day.year * 12 + day.month - 1 + months
    return dt.date(index // 12, index % 12 + 1, 1)


def period_bounds(period: str, start: dt.date, end: dt.date) -> list[tuple[dt.date, dt.date]]:
    """Calendar periods ``(first day, last day)`` lying wholly in ``[start, end]``, oldest first.

    ``month``, ``quarter`` and ``year`` are calendar periods; ``ttm`` is the trailing twelve
    months ending at each month end.
    """
    if period not in PERIODS:
        raise ValueError(f"period must be one of {', '.join(PERIODS)}, got {period!r}")
    if end < start:
        raise ValueError(f"end {end} lies before start {start}")
    step = 1 if period == "ttm" else _PERIOD_MONTHS[period]
    first = dt.date(start.year, start.month, 1)
    if period in ("quarter", "year"):
        first = dt.date(start.year, 1 if period == "year" else (start.month - 1) // 3 * 3 + 1, 1)
    bounds = []
    while True:
        period_end = _add_months(first, _PERIOD_MONTHS[period]) - dt.timedelta(days=1)
        if period_end > end:
            return bounds
        if first >= start:
            bounds.append((first, period_end))
        first = _add_months(first, step)


def last_complete_period(period: str, end: dt.date) -> tuple[dt.date, dt.date]:
    """The newest period of this kind (``month``, ``quarter``, ``year``, ``ttm``) that ends on or before ``end``."""
    return period_bounds(period, dt.date(end.year - 2, 1, 1), end)[-1]


def no_complete_period(period: str, start: dt.date, end: dt.date) -> str:
    """Why a report over [start, end] has no row, naming the last complete period and the shorter ones that fit."""
    first, last = last_complete_period(period, end)
    said = (f"no complete {period} lies between {start} and {end}: the last complete {period}, {first} .. {last}, "
            f"begins before {start}")
    shorter = [p for p in ("quarter", "month") if _PERIOD_MONTHS[p] < _PERIOD_MONTHS[period]]
    fits = [(p, period_bounds(p, start, end)) for p in shorter]
    fits = [(p, b[-1]) for p, b in fits if b]
    if fits:
        said += "; " + ", ".join(f"the last complete {p} is {b[0]} .. {b[1]} (--period {p})" for p, b in fits)
    return said


@dataclass(frozen=True)
class MetricTables:
    """The canonical tables the metrics read, as Ibis tables (``products`` optional, for tier ranks)."""

    subscriptions: ir.Table
    accounts: ir.Table
    products: ir.Table | None = None

    @classmethod
    def from_backend(cls, con: ibis.BaseBackend) -> MetricTables:
        """Tables of an Ibis backend (e.g. ``DataSource.ibis()``); products is used when present."""
        try:
            products = con.table("products")
        except Exception:  # noqa: BLE001 - backends raise different errors for a missing table
            products = None
        return cls(con.table("subscriptions"), con.table("accounts"), products)

    @classmethod
    def from_source(cls, source: DataSource) -> MetricTables:
        """Tables of a data folder opened with ``features.io.open_data``."""
        con = source.ibis()
        products = con.table("products") if source.has("products") else None
        return cls(con.table("subscriptions"), con.table("accounts"), products)

    def data_span(self) -> tuple[dt.date, dt.date]:
        """First and last boundary day in the subscriptions history."""
        s = self.subscriptions
        row = s.aggregate(
            first=s.valid_from.cast("date").min(),
            last=ibis.greatest(s.valid_from.cast("date").max(), s.valid_to.cast("date").max()),
        ).execute()
        return pd.Timestamp(row["first"].iloc[0]).date(), pd.Timestamp(row["last"].iloc[0]).date()


def group_expr(accounts: ir.Table, by: str | None) -> ir.StringValue:
    """The group label of each account: a column of ``accounts``, its signup quarter, or ``all``."""
    if by is None:
        return ibis.literal("all")
    if by not in GROUPINGS:
        raise ValueError(f"by must be one of {', '.join(GROUPINGS)}, got {by!r}")
    if by == "cohort":
        since = accounts.customer_since.cast("date")
        return since.year().cast("string") + "-Q" + since.quarter().cast("string")
    column = "acquisition_channel" if by == "channel" else by
    return accounts[column].cast("string").fill_null("unknown")


def account_groups(accounts: ir.Table, by: str | None) -> ir.Table:
    """One row per account: ``account_id``, ``group``."""
    return accounts.select(account_id=accounts.account_id.cast("string"), group=group_expr(accounts, by))


def _account_windows(tables: MetricTables, bounds: list[tuple[dt.date, dt.date]]) -> ir.Table:
    """One row per period and account active at its start: starting and ending MRR, expansions inside."""
    periods = ibis.memtable(
        {
            "period_index": list(range(len(bounds))),
            "opening_day": [b[0] - dt.timedelta(days=1) for b in bounds],
            "first_day": [b[0] for b in bounds],
            "last_day": [b[1] for b in bounds],
        },
        schema={"period_index": "int64", "opening_day": "date", "first_day": "date", "last_day": "date"},
    )
    days = periods.select(as_of=periods.opening_day).union(periods.select(as_of=periods.last_day))
    mrr = account_mrr_at(tables.subscriptions, days)
    opening = periods.join(mrr, periods.opening_day == mrr.as_of).filter(mrr.mrr > 0)
    opening = opening.select("period_index", "first_day", "last_day", "account_id", starting_mrr="mrr")
    closing = mrr.select(c_account="account_id", c_day="as_of", ending_mrr="mrr")
    w = opening.left_join(closing, [opening.account_id == closing.c_account, opening.last_day == closing.c_day])
    w = w.select(*opening.columns, ending_mrr=w.ending_mrr.fill_null(0.0))
    m = movements(tables.subscriptions, tables.products)
    m = m.filter(m.movement == "expansion").select(m_account="account_id", m_date="date", m_delta="mrr_delta")
    inside = w.join(m, [w.account_id == m.m_account, m.m_date >= w.first_day, m.m_date <= w.last_day])
    counts = inside.group_by(["period_index", "account_id"]).aggregate(
        expansions=inside.m_delta.count(), gross_expansion_mrr=inside.m_delta.sum()
    )
    counts = counts.select(x_period="period_index", x_account="account_id", expansions="expansions",
                           gross_expansion_mrr="gross_expansion_mrr")
    out = w.left_join(counts, [w.period_index == counts.x_period, w.account_id == counts.x_account])
    return out.select(
        *w.columns,
        expansions=out.expansions.fill_null(0),
        gross_expansion_mrr=out.gross_expansion_mrr.fill_null(0.0),
    )


def _aggregate(w: ir.Table, groups: ir.Table) -> ir.Table:
    """Sum the per-account components by period and group (per-account netting, see docs/metrics.md)."""
    j = w.join(groups, "account_id")
    change = j.ending_mrr - j.starting_mrr
    churned = j.ending_mrr <= 0
    return j.group_by(["period_index", "group"]).aggregate(
        accounts_start=j.account_id.count(),
        starting_mrr=j.starting_mrr.sum(),
        expansion_mrr=ibis.greatest(change, 0.0).sum(),
        contraction_mrr=(~churned & (change < 0)).ifelse(-change, 0.0).sum(),
        churned_mrr=churned.ifelse(j.starting_mrr, 0.0).sum(),
        ending_mrr=j.ending_mrr.sum(),
        gross_expansion_mrr=j.gross_expansion_mrr.sum(),
        accounts_churned=churned.cast("int64").sum(),
        accounts_expanded=(j.expansions > 0).cast("int64").sum(),
    )


def _derive_rates(frame: pd.DataFrame) -> pd.DataFrame:
    """Percentages and the NRR band on the small aggregated frame."""
    start = frame["starting_mrr"].where(frame["starting_mrr"] > 0)
    logos = frame["accounts_start"].where(frame["accounts_start"] > 0)
    out = frame.assign(
        nrr_pct=(start + frame["expansion_mrr"] - frame["contraction_mrr"] - frame["churned_mrr"]) / start * 100,
        grr_pct=((start - frame["contraction_mrr"] - frame["churned_mrr"]) / start * 100).clip(upper=100.0),
        expansion_rate_pct=frame["expansion_mrr"] / start * 100,
        contraction_rate_pct=frame["contraction_mrr"] / start * 100,
        churn_rate_pct=frame["churned_mrr"] / start * 100,
        logo_churn_pct=frame["accounts_churned"] / logos * 100,
        expansion_penetration_pct=frame["accounts_expanded"] / logos * 100,
    )
    out["logo_retention_pct"] = 100.0 - out["logo_churn_pct"]
    out["nrr_band"] = [benchmark_band(v) for v in out["nrr_pct"]]
    return out


def period_metrics(
    tables: MetricTables | ibis.BaseBackend,
    period: str = "month",
    by: str | None = None,
    start: dt.date | None = None,
    end: dt.date | None = None,
) -> pd.DataFrame:
    """NRR, GRR, their components and the retention rates per period and group, one row each.

    Periods lie wholly in ``[start, end]`` (defaults: the span of the subscriptions history;
    pass ``end=as_of`` to ignore anything later). A period's starting MRR is the MRR at the
    end of the day before it starts, over accounts paying then; its ending MRR is at the
    end of its last day. Groups with no paying account at a period's start have no row.
    """
    if not isinstance(tables, MetricTables):
        tables = MetricTables.from_backend(tables)
    if start is None or end is None:
        first, last = tables.data_span()
        start, end = start or first, end or last
    bounds = period_bounds(period, start, end)
    columns = ["period_start", "period_end", "group", *_OUTPUT_COLUMNS]
    if not bounds:
        return pd.DataFrame(columns=columns)
    agg = _aggregate(_account_windows(tables, bounds), account_groups(tables.accounts, by)).execute()
    agg["period_start"] = [bounds[i][0] for i in agg["period_index"]]
    agg["period_end"] = [bounds[i][1] for i in agg["period_index"]]
    out = _derive_rates(agg).sort_values(["period_start", "group"]).reset_index(drop=True)
    return out[columns]


_OUTPUT_COLUMNS = [
    "accounts_start", "starting_mrr", "expansion_mrr", "contraction_mrr", "churned_mrr", "ending_mrr",
    "nrr_pct", "grr_pct", "nrr_band", "expansion_rate_pct", "contraction_rate_pct", "churn_rate_pct",
    "accounts_churned", "logo_churn_pct", "logo_retention_pct", "accounts_expanded",
    "expansion_penetration_pct", "gross_expansion_mrr",
]
