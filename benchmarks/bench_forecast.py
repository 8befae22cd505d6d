"""Forecast speed at 10,000 and 100,000 accounts, against the models' own predict on the same rows.

    python benchmarks/bench_forecast.py [--accounts 10000 100000] [--draws 2000]

Generates a small company, fits both boosters on its labelled snapshots, and replicates
the newest snapshot's rows to each size with new account ids. For each size it times the
reference (both models' calibrated predict on the book, which any scoring already pays)
and the forecast proper (expected amounts and the Monte Carlo intervals), then the live
method choice and serving (both naive forecasts on the book's four past quarters, the
choice on a 24-cut-off backtest record, the intervals), and prints the ratio, with CPU seconds of this process and the load average, since other jobs share the
machine (wall time under load is mostly waiting for a core).
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

import pandas as pd

os.environ.setdefault("MLFLOW_DISABLE_TELEMETRY", "true")
sys.path.insert(0, str(Path(__file__).resolve().parent))
from companies import AS_OF, monthly_frame  # noqa: E402 - a sibling module of this script


def models_and_snapshot(workdir: Path):  # noqa: ANN201 - (models, snapshot, sizes)
    from features.registry import categorical_features, feature_names
    from training.datasets import LABELS
    from training.forecast import learn_sizes
    from training.models import Calibrator, assemble, fit_booster, predict_rounds

    as_of = AS_OF
    frame, _ = monthly_frame(workdir)
    feats, cats = feature_names(), categorical_features()
    models = {}
    for name, label in LABELS.items():
        rows = frame.loc[frame[label].notna()]
        booster, levels = fit_booster(name, rows, label, feats, cats, rounds=200, threads=1)
        raw = predict_rounds(booster, rows, feats, levels, (200,))[200]
        models[name] = assemble(name, booster, Calibrator.fit(raw, rows[label].to_numpy(float)), feats, cats, levels,
                                rows, label)
    frame["contraction_mrr"] = 0.0
    sizes = learn_sizes(frame.loc[frame["expanded"].notna()])
    keep = ["account_id", "as_of", "segment", "arr", "expanded", "churned", "contracted", "expansion_mrr", "contraction_mrr"]
    return models, frame[frame["as_of"] == pd.Timestamp(as_of)].reset_index(drop=True), sizes, frame[keep]


def replicate(snapshot: pd.DataFrame, accounts: int) -> pd.DataFrame:
    reps = -(-accounts // len(snapshot))
    big = pd.concat([snapshot] * reps, ignore_index=True).iloc[:accounts].copy()
    big["account_id"] = [f"bench-{i:07d}" for i in range(len(big))]
    return big


def history(frame: pd.DataFrame, accounts: int, cutoff: pd.Timestamp) -> pd.DataFrame:
    """The four month ends one horizon apart before ``cutoff``, each replicated to ``accounts`` rows (the naive
    forecasts and the interval floor read them)."""
    days = [(cutoff - pd.DateOffset(months=3 * k) + pd.offsets.MonthEnd(0)).normalize() for k in range(1, 5)]
    return pd.concat([replicate(frame.loc[frame["as_of"] == d].reset_index(drop=True), accounts) for d in days],
                     ignore_index=True)


def choice_record(groups: list[str], cutoffs: int = 24) -> pd.DataFrame:
    """A backtest record of ``cutoffs`` monthly cut-offs for every group, measure and base method (what the store keeps)."""
    import numpy as np

    from training.forecast import MEASURES
    from training.forecast_choice import BASE

    rng = np.random.default_rng(1)
    days = pd.date_range(end="2026-03-31", periods=cutoffs, freq="ME")
    return pd.DataFrame([{"cutoff": d, "group": g, "measure": m, "method": k, "forecast": 100 + rng.normal(0, 5),
                          "actual": 100.0, "starting_arr": 1e4} for d in days for g in groups for m in MEASURES for k in BASE])


def track_record(table: pd.DataFrame, cutoffs: int = 24) -> pd.DataFrame:
    """Monthly past forecasts' errors for every group and measure of ``table`` (what the store would give)."""
    import numpy as np

    rng = np.random.default_rng(0)
    days = pd.date_range(end="2026-03-31", periods=cutoffs, freq="ME")
    return pd.DataFrame([{"as_of": d, "group": g, "measure": m, "z": rng.standard_normal()}
                         for d in days for g in table["group"] for m in ("expansion_arr", "contraction_arr",
                                                                           "churned_arr", "nrr_pct")])


def main() -> None:
    from training.forecast import account_expectations, forecast
    from training.forecast_calibration import calibrate, dispersion
    from training.forecast_job import choose_and_serve

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--accounts", type=int, nargs="+", default=[10_000, 100_000])
    parser.add_argument("--draws", type=int, default=2000)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        models, snapshot, sizes, frame = models_and_snapshot(Path(tmp))
        cutoff = pd.Timestamp("2026-06-30")
        for n in args.accounts:
            book = replicate(snapshot, n)
            past = history(frame, n, cutoff)
            record = choice_record(["all", *sorted(book["segment"].astype(str).unique())])
            t0, c0 = time.perf_counter(), time.process_time()
            p_exp, p_churn = models["expansion"].predict_proba(book), models["churn"].predict_proba(book)
            t1, c1 = time.perf_counter(), time.process_time()
            table = forecast(account_expectations(book, p_exp, p_churn, sizes), sizes, draws=args.draws)
            table = calibrate(table, dispersion(track_record(table), pd.Timestamp("2026-06-30"), 90))
            t2, c2 = time.perf_counter(), time.process_time()
            books = pd.concat([past, book[past.columns]], ignore_index=True).assign(as_of=lambda f: pd.to_datetime(f["as_of"]))
            served, _ = choose_and_serve(books, book, table, record, cutoff, 90)
            t3, c3 = time.perf_counter(), time.process_time()
            load = Path("/proc/loadavg").read_text().split()[0] if Path("/proc/loadavg").exists() else "?"
            print(f"{n:>7,} accounts: predict (reference) {t1 - t0:6.2f} s | forecast, {args.draws} draws "
                  f"{t2 - t1:6.2f} s | method choice and serving {t3 - t2:6.2f} s | x reference (both) "
                  f"{(t3 - t1) / (t1 - t0):5.2f} | CPU s: predict {c1 - c0:.2f}, forecast {c2 - c1:.2f}, choice "
                  f"{c3 - c2:.2f} | load {load} | expansion ARR {table.loc[0, 'expansion_arr']:,.0f} (model), "
                  f"{served.loc[0, 'expansion_arr']:,.0f} served by {served.loc[0, 'expansion_arr_method']}")


if __name__ == "__main__":
    main()
