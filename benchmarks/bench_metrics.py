"""Benchmark: revenue movements and retention metrics on a generated 10,000-account, 24-month company.

Run: ``python benchmarks/bench_metrics.py [--accounts 10000] [--months 24]``. Prints seconds per step
and the ratio against a reference measured in the same run: monthly NRR computed in plain
pandas from the subscriptions table (the account MRR at both ends of every month).
"""

from __future__ import annotations

import argparse
import datetime as dt
import tempfile
import time
from collections.abc import Callable

import pandas as pd

AS_OF = dt.date(2025, 12, 31)


def _timed(fn: Callable[[], object]) -> float:
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


def pandas_monthly_nrr(subs: pd.DataFrame, bounds: list[tuple[dt.date, dt.date]]) -> list[float]:
    """The reference: per month, account MRR the day before it starts and on its last day."""
    valid_from = pd.to_datetime(subs["valid_from"])
    valid_to = pd.to_datetime(subs["valid_to"])
    out = []
    for first, last in bounds:
        def on(day: dt.date) -> pd.Series:
            d = pd.Timestamp(day)
            return subs[(valid_from <= d) & (valid_to.isna() | (valid_to > d))].groupby("account_id")["mrr"].sum()
        opening = on(first - dt.timedelta(days=1))
        opening = opening[opening > 0]
        closing = on(last).reindex(opening.index, fill_value=0.0)
        out.append(closing.sum() / opening.sum() * 100)
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--accounts", type=int, default=10_000)
    parser.add_argument("--months", type=int, default=24)
    args = parser.parse_args()

    from features import cohorts
    from features.io import open_data
    from features.metrics import MetricTables, period_bounds, period_metrics
    from features.movements import movements
    from features.synth import generate

    with tempfile.TemporaryDirectory() as folder:
        gen_s = _timed(lambda: generate(folder, accounts=args.accounts, months=args.months, seed=7, as_of=AS_OF))
        source = open_data(folder)
        tables = MetricTables.from_source(source)
        start = dt.date(AS_OF.year - args.months // 12, AS_OF.month, 1)
        bounds = period_bounds("month", start, AS_OF)
        subs = source.con.execute("SELECT account_id, mrr, valid_from, valid_to FROM subscriptions").df()
        reference = _timed(lambda: pandas_monthly_nrr(subs, bounds))
        steps = {
            "movements (all rows to pandas)": lambda: movements(tables.subscriptions, tables.products).execute(),
            "period_metrics month": lambda: period_metrics(tables, "month", None, start, AS_OF),
            "period_metrics quarter by segment": lambda: period_metrics(tables, "quarter", "segment", start, AS_OF),
            "period_metrics ttm by cohort": lambda: period_metrics(tables, "ttm", "cohort", start, AS_OF),
            "cohort_expansion_curve": lambda: cohorts.cohort_expansion_curve(tables, AS_OF),
            "cohort_nrr": lambda: cohorts.cohort_nrr(tables, AS_OF),
            "time_to_first_expansion by industry": lambda: cohorts.time_to_first_expansion(tables, AS_OF, "industry"),
            "expansion_frequency": lambda: cohorts.expansion_frequency(tables, AS_OF),
            "expansion_by_kind": lambda: cohorts.expansion_by_kind(tables, start, AS_OF),
        }
        # fetchall, not fetchone: DuckDB 2 keeps a half-read result open and refuses the next query.
        rows = source.con.execute("SELECT count(*) FROM subscriptions").fetchall()[0][0]
        print(f"{args.accounts:,} accounts, {args.months} months, {rows:,} subscription rows (generated in {gen_s:.1f} s)")
        print(f"reference: plain pandas monthly NRR over {len(bounds)} months: {reference:.2f} s")
        for name, fn in steps.items():
            seconds = _timed(fn)
            print(f"{name:40s} {seconds:6.2f} s   {seconds / reference:5.2f}x reference")


if __name__ == "__main__":
    main()
