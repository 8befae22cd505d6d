"""Benchmark ``expansion generate --raw segment``: peak memory must not grow with the company.

    python benchmarks/bench_raw.py [--accounts 10000] [--months 2]

Each size runs in its own child process (generate, then the raw Segment export), so its
peak RSS is measured alone. The in-run reference is the same command at a tenth of the
accounts: with the export streamed per group of accounts, the ratio of peak RSS stays
near 1 while the events written grow about tenfold.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
from pathlib import Path

AS_OF = "2026-11-30"
RATIO_LIMIT = 1.5

CHILD = """
import datetime as dt, json, resource, sys, time
from pathlib import Path
from features.synth import generate
from features.synth.raw_shapes import segment
out = Path(sys.argv[1])
generate(out, int(sys.argv[2]), int(sys.argv[3]), 7, dt.date.fromisoformat(sys.argv[4]))
t0 = time.perf_counter()
events = segment(out, out / "raw" / "segment")
print(json.dumps({"seconds": time.perf_counter() - t0, "events": events,
                  "peak_gb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024**2}))
"""


def measure(accounts: int, months: int) -> dict:
    with tempfile.TemporaryDirectory() as tmp:
        proc = subprocess.run([sys.executable, "-c", CHILD, str(Path(tmp) / "c"), str(accounts), str(months), AS_OF],
                              capture_output=True, text=True, check=True, cwd=Path(__file__).resolve().parents[1])
    return json.loads(proc.stdout.strip().splitlines()[-1])


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--accounts", type=int, default=10_000)
    parser.add_argument("--months", type=int, default=2)
    args = parser.parse_args()
    small, big = measure(max(args.accounts // 10, 1), args.months), measure(args.accounts, args.months)
    for n, r in ((max(args.accounts // 10, 1), small), (args.accounts, big)):
        print(f"accounts={n:,} months={args.months}: {r['events']:,} track rows in {r['seconds']:.0f} s "
              f"({r['events'] / r['seconds']:,.0f}/s), peak RSS {r['peak_gb']:.2f} GB")
    ratio = big["peak_gb"] / small["peak_gb"]
    print(f"peak RSS ratio {args.accounts:,} / {max(args.accounts // 10, 1):,} accounts = {ratio:.2f}x "
          f"for {big['events'] / small['events']:.1f}x the events")
    ok = ratio < RATIO_LIMIT
    print("PASS" if ok else f"FAIL: peak memory grew more than {RATIO_LIMIT}x")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
