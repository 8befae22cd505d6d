"""Benchmark ``expansion generate``: wall time, peak memory and rows per second per table.

    python benchmarks/bench_generate.py [--accounts 10000] [--months 24] [--messy]

Generation runs in a child process so its peak RSS is measured alone. The in-run
reference is one bare pyarrow Parquet write of the same usage_daily rows, so the ratio
says how much of the time goes beyond writing the biggest table at all.
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pyarrow.parquet as pq

AS_OF = "2025-06-30"
TIME_LIMIT_S, MEMORY_LIMIT_GB = 60.0, 4.0

CHILD = """
import datetime as dt, json, sys, time
from features.synth import MessyConfig, generate
t0 = time.perf_counter()
rows = generate(sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), 7, dt.date.fromisoformat(sys.argv[4]),
                mess=MessyConfig() if sys.argv[5] == "messy" else None)
print(json.dumps({"seconds": time.perf_counter() - t0, "rows": rows}))
"""


def run(accounts: int, months: int, messy: bool = False) -> int:
    """Generate once in a child process, then time the bare reference write; print figures."""
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "company"
        wall = time.perf_counter()
        proc = subprocess.run([sys.executable, "-c", CHILD, str(out), str(accounts), str(months), AS_OF,
                               "messy" if messy else "clean"],
                              capture_output=True, text=True, check=True, cwd=Path(__file__).resolve().parents[1])
        wall = time.perf_counter() - wall
        peak_gb = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024**2  # KiB on Linux
        result = json.loads(proc.stdout.strip().splitlines()[-1])
        usage = pq.read_table(out / "usage_daily.parquet")
        t0 = time.perf_counter()
        pq.write_table(usage, Path(tmp) / "reference.parquet", compression="zstd")
        reference = time.perf_counter() - t0
    seconds = result["seconds"]
    print(f"accounts={accounts:,} months={months}{' (messy)' if messy else ''}: generate {seconds:.1f} s (process {wall:.1f} s), "
          f"peak RSS {peak_gb:.2f} GB")
    for name, n in result["rows"].items():
        print(f"  {name:<16} {n:>12,} rows  {n / seconds:>12,.0f} rows/s")
    print(f"reference: bare pyarrow write of {usage.num_rows:,} usage_daily rows {reference:.2f} s; "
          f"generate / reference = {seconds / reference:.1f}x")
    ok = accounts > 10_000 or (seconds < TIME_LIMIT_S and peak_gb < MEMORY_LIMIT_GB)
    print("PASS" if ok else f"FAIL: limits are {TIME_LIMIT_S:.0f} s and {MEMORY_LIMIT_GB:.0f} GB at 10,000 accounts")
    return 0 if ok else 1


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--accounts", type=int, default=10_000)
    parser.add_argument("--months", type=int, default=24)
    parser.add_argument("--messy", action="store_true", help="the messy company (generate --messy)")
    args = parser.parse_args()
    return run(args.accounts, args.months, args.messy)


if __name__ == "__main__":
    raise SystemExit(main())
