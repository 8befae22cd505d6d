"""Benchmark: training both models (3-cut-off backtest, early stopping, calibration) on ~500k snapshot rows.

One command: ``python benchmarks/bench_train.py [--rows 500000] [--features FILE]``. Without
``--features`` it generates a company and builds its feature frame, then replicates it
with perturbed numeric features and fresh account ids until it holds ``--rows`` rows. The
reference, measured in the same run on the same rows, is one bare ``lgb.train`` of 200
rounds on every labelled row with the same parameters.
"""

from __future__ import annotations

import argparse
import datetime as dt
import tempfile
import time
from pathlib import Path

import lightgbm as lgb
import numpy as np
import pandas as pd

from features.config import Settings
from features.registry import categorical_features, feature_names
from training.models import DEFAULT_PARAMS, category_levels, prepare
from training.train import train_all

AS_OF = dt.date(2026, 6, 30)


def generated_frame(accounts: int, months: int, seed: int) -> pd.DataFrame:
    """Generate a company and build its feature frame."""
    from features.build import build_features
    from features.io import open_data
    from features.spine import month_ends
    from features.synth import generate

    folder = Path(tempfile.mkdtemp(prefix="bench_train_"))
    generate(folder, accounts=accounts, months=months, seed=seed, as_of=AS_OF)
    source = open_data(folder)
    first = source.con.execute("SELECT min(date) FROM usage_daily").fetchone()[0]
    return build_features(source, month_ends(first, AS_OF), Settings(_env_file=None, home=folder.with_name(f"{folder.name}_home")))


def replicate(frame: pd.DataFrame, rows: int, seed: int) -> pd.DataFrame:
    """Copies of ``frame`` with new account ids and numeric features scaled by 1 + N(0, 0.05)."""
    rng = np.random.default_rng(seed)
    numeric = [c for c in feature_names() if c not in categorical_features()]
    copies, total, i = [], 0, 0
    while total < rows:
        part = frame.copy()
        part["account_id"] = part["account_id"].astype(str) + f"~{i}"
        if i:
            part[numeric] = part[numeric] * rng.normal(1.0, 0.05, size=(len(part), len(numeric)))
        copies.append(part)
        total, i = total + len(part), i + 1
    return pd.concat(copies, ignore_index=True).head(rows)


def bare_reference(frame: pd.DataFrame, threads: int) -> float:
    """Seconds for one plain lgb.train of 200 rounds on every labelled expansion row."""
    labelled = frame[frame["expanded"].notna()]
    features, categorical = feature_names(), categorical_features()
    x = prepare(labelled, features, category_levels(labelled, categorical))
    start = time.perf_counter()
    lgb.train({**DEFAULT_PARAMS, "num_threads": threads}, lgb.Dataset(x, labelled["expanded"].to_numpy()), 200)
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=500_000)
    parser.add_argument("--features", type=Path, help="A feature frame (Parquet) to replicate instead of generating one.")
    parser.add_argument("--accounts", type=int, default=3000)
    parser.add_argument("--months", type=int, default=24)
    args = parser.parse_args()
    settings = Settings(_env_file=None)
    t0 = time.perf_counter()
    base = pd.read_parquet(args.features) if args.features else generated_frame(args.accounts, args.months, seed=5)
    frame = replicate(base, args.rows, seed=1)
    print(f"frame: {len(frame):,} rows x {len(feature_names())} features ({time.perf_counter() - t0:.1f} s to prepare)")
    reference = bare_reference(frame, settings.lgbm_threads)
    print(f"reference: one bare lgb.train, 200 rounds, {frame['expanded'].notna().sum():,} rows: {reference:.1f} s")
    start = time.perf_counter()
    results = train_all(frame, feature_names(), categorical_features(), settings)
    elapsed = time.perf_counter() - start
    for name, result in results.items():
        print(f"  {name}: {len(result.folds)} cut-offs, refit with {result.rounds} rounds, "
              f"pooled ROC-AUC {result.interval('roc_auc')} on {result.positives} positives")
    print(f"train both models (pooled backtest over every cut-off, refit, calibration, bootstrap): {elapsed:.1f} s")
    print(f"ratio to reference: {elapsed / reference:.2f}x; target < 300 s: {'met' if elapsed < 300 else 'MISSED'}")


if __name__ == "__main__":
    main()
