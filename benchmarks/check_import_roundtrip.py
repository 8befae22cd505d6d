"""Round-trip figures: a generated company written as Stripe, Salesforce and Segment exports and imported back.

Run: ``python benchmarks/check_import_roundtrip.py [--accounts 40] [--months 12] [--seed 5]``. Prints, for the
tables the three tools carry, rows on each side and rows that differ; monthly NRR and GRR on each side and the
largest difference; the feature frame's shape and the number of cells that differ (NaN = NaN).
"""

from __future__ import annotations

import argparse
import shutil
import tempfile
import time
import tomllib
from pathlib import Path

import numpy as np
import pandas as pd

TABLES = {"accounts": ["account_id"], "subscriptions": ["account_id", "product_id", "valid_from"],
          "products": ["product_id", "plan"], "usage_daily": ["account_id", "date", "feature_key"], "payments": ["invoice_id"]}


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--accounts", type=int, default=40)
    parser.add_argument("--months", type=int, default=12)
    parser.add_argument("--seed", type=int, default=5)
    args = parser.parse_args()

    from features.build import build_features
    from features.config import Settings
    from features.importers.run import import_sources
    from features.io import open_data
    from features.metrics import MetricTables, period_metrics
    from features.spine import month_ends
    from features.synth import generate
    from features.synth.raw_shapes import write_raw

    as_of = pd.Timestamp("2026-06-30").date()
    root = Path(tempfile.mkdtemp(prefix="roundtrip-"))
    generate(root / "generated", accounts=args.accounts, months=args.months, seed=args.seed, as_of=as_of)
    start = time.perf_counter()
    write_raw(root / "generated", root / "raw")
    print(f"raw exports written in {time.perf_counter() - start:.1f} s; "
          f"{len(pd.read_parquet(root / 'raw' / 'segment' / 'tracks.parquet', columns=['id'])):,} track rows")
    own = root / "own"
    own.mkdir()
    for t in TABLES:
        shutil.copy(root / "generated" / f"{t}.parquet", own / f"{t}.parquet")
    start = time.perf_counter()
    config = tomllib.loads((root / "raw" / "import-map.toml").read_text())
    import_sources(["stripe", "salesforce", "segment"], root / "raw", root / "imported", config, as_of)
    print(f"imported in {time.perf_counter() - start:.1f} s")
    for t, keys in TABLES.items():
        a = pd.read_parquet(own / f"{t}.parquet").sort_values(keys).reset_index(drop=True)
        b = pd.read_parquet(root / "imported" / f"{t}.parquet").sort_values(keys).reset_index(drop=True)
        differ = (~((a == b) | (a.isna() & b.isna()))).any(axis=1).sum() if len(a) == len(b) else "n/a"
        print(f"{t}: {len(a):,} generated, {len(b):,} imported, rows differing: {differ}")
    metrics, frames = [], []
    for folder in (own, root / "imported"):
        source = open_data(folder)
        try:
            metrics.append(period_metrics(MetricTables.from_source(source), "month", end=as_of))
            first = source.con.execute("SELECT min(date) FROM usage_daily").fetchone()[0]
            home = folder.with_name(f"{folder.name}_home")  # its compiled feature SQL, not in the working directory
            frames.append(build_features(source, month_ends(first, as_of), Settings(_env_file=None, home=home))
                          .sort_values(["account_id", "as_of"]).reset_index(drop=True))
        finally:
            source.close()
    m0, m1 = metrics
    for col in ("nrr_pct", "grr_pct", "starting_mrr", "ending_mrr"):
        print(f"{col}: max |difference| over {len(m0)} months = {np.nanmax(np.abs(m0[col] - m1[col])):.10f}")
    last = m0.iloc[-1]
    print(f"last month {last['period_start']}: NRR {last['nrr_pct']:.2f} % / {m1.iloc[-1]['nrr_pct']:.2f} %, "
          f"GRR {last['grr_pct']:.2f} % / {m1.iloc[-1]['grr_pct']:.2f} %")
    f0, f1 = frames
    same = (f0 == f1) | (f0.isna() & f1.isna())
    print(f"feature frame: {f0.shape} generated, {f1.shape} imported, cells differing: {int((~same).to_numpy().sum())}")
    print(f"load average: {open('/proc/loadavg').read().split()[:3]}")
    shutil.rmtree(root, ignore_errors=True)


if __name__ == "__main__":
    main()
