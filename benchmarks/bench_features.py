"""Feature pipeline throughput against a bare DuckDB aggregation of the same usage table.

    python benchmarks/bench_features.py [--accounts 10000] [--months 24] [--raw-pass]
        [--memory-accounts 100000 | --memory-data FOLDER] [--memory-limit 2GB]

Generates a company (cached under --work), then in one run measures usage rows per
second through ``build_features`` over every month end, and through a bare
``GROUP BY account_id, month`` of ``usage_daily`` (the reference); the pipeline runs in an empty home
(its feature SQL compiled) and then again with the plan that build kept (``features.plans``). With
``--memory-accounts N`` (or ``--memory-data`` naming an already generated folder, e.g.
from ``expansion generate --accounts 100000``) it also builds features for that company
in a child process whose DuckDB connection is capped at ``--memory-limit`` and may spill
to a temporary folder, and reports the child's peak resident memory. ``--raw-pass``
builds with the one raw pass over usage (``features.usage_pass``) instead of the reference's
three scans, for a pair in separate processes (peak memory is per process).
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from companies import AS_OF, company  # noqa: E402 - a sibling module of this script


def _cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def measure(folder: Path, months: int, memory_limit: str | None = None, batch: int | None = None,
            raw_pass: bool = False, kept: bool = True) -> dict[str, float]:
    """Time the bare aggregation and the full pipeline on the same data folder (``kept``: and again with its plan)."""
    from features.build import build_features
    from features.config import Settings
    from features.io import open_data
    from features.spine import month_ends

    source = open_data(folder)
    if memory_limit:
        spill = tempfile.mkdtemp(prefix="features-spill-")
        source.con.execute(f"SET memory_limit = '{memory_limit}'")
        source.con.execute(f"SET temp_directory = '{spill}'")
        source.con.execute("SET preserve_insertion_order = false")
    rows = source.con.execute("SELECT count(*) FROM usage_daily").fetchone()[0]
    started, cpu = time.perf_counter(), _cpu()
    source.con.execute(
        "SELECT account_id, date_trunc('month', date) AS month, sum(events), max(active_users) "
        "FROM usage_daily GROUP BY account_id, month"
    ).fetchall()
    bare_s, bare_cpu = time.perf_counter() - started, _cpu() - cpu
    dates = month_ends(AS_OF.replace(day=1) - dt.timedelta(days=30 * (months - 1)), AS_OF)
    home = Path(tempfile.mkdtemp(prefix="features-home-"))  # an empty home: the feature SQL is compiled first
    settings = Settings(_env_file=None, home=home, feature_plans=None)
    timed = []
    for _ in range(1 if kept is False else 2):  # then again with the plan the first build kept (features.plans)
        started, cpu = time.perf_counter(), _cpu()
        frame = build_features(source, dates, settings, snapshots_per_batch=batch, raw_pass=raw_pass)
        timed.append((time.perf_counter() - started, _cpu() - cpu))
    source.close()
    shutil.rmtree(home, ignore_errors=True)
    return {"usage_rows": rows, "snapshots": len(dates), "frame_rows": len(frame), "bare_s": bare_s,
            "pipeline_s": timed[0][0], "bare_cpu": bare_cpu, "pipeline_cpu": timed[0][1],
            "kept_s": timed[-1][0], "kept_cpu": timed[-1][1],
            "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--accounts", type=int, default=10_000)
    parser.add_argument("--months", type=int, default=24)
    parser.add_argument("--memory-accounts", type=int, default=0, help="also build an N-account company in a child")
    parser.add_argument("--memory-data", type=Path, help="an already generated company folder for the memory run")
    parser.add_argument("--memory-limit", default="2GB", help="DuckDB memory_limit of the memory run")
    parser.add_argument("--memory-batch", type=int, default=6, help="snapshots per batch in the memory run")
    parser.add_argument("--raw-pass", action="store_true", help="read raw usage in one pass (features.usage_pass)")
    parser.add_argument("--work", type=Path, default=Path(".expansion/bench"))
    parser.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--data", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args()
    folder = args.data or company(args.work, args.accounts, args.months)
    result = measure(folder, args.months, *((args.memory_limit, args.memory_batch) if args.child else (None, None)),
                     raw_pass=args.raw_pass, kept=not args.child)
    if args.child:
        print(json.dumps(result))
        return
    r = result
    print(f"usage_daily rows: {r['usage_rows']:,}; snapshots: {r['snapshots']}; feature rows: {r['frame_rows']:,}")
    print(f"bare GROUP BY account_id, month: {r['bare_s']:.2f} s = {r['usage_rows'] / r['bare_s']:,.0f} rows/s")
    print(f"full feature pipeline:           {r['pipeline_s']:.2f} s = {r['usage_rows'] / r['pipeline_s']:,.0f} rows/s")
    print(f"raw usage read by:               {'the one raw pass' if args.raw_pass else 'the three reference scans'}")
    print(f"pipeline / bare aggregation:     {r['pipeline_s'] / r['bare_s']:.1f}x (target <= 5x); CPU "
          f"{r['pipeline_cpu']:.2f} s / {r['bare_cpu']:.2f} s = {r['pipeline_cpu'] / r['bare_cpu']:.1f}x "
          "(feature SQL compiled: the first build in a home)")
    print(f"again, plan kept:                {r['kept_s']:.2f} s, {r['kept_s'] / r['bare_s']:.1f}x; CPU "
          f"{r['kept_cpu']:.2f} s = {r['kept_cpu'] / r['bare_cpu']:.1f}x (every later build)")
    print(f"peak resident memory:            {r['peak_rss_mb']:,.0f} MB")
    if args.memory_accounts or args.memory_data:
        cmd = [sys.executable, __file__, "--child", "--accounts", str(args.memory_accounts),
               "--months", str(args.months), "--work", str(args.work), "--memory-limit", args.memory_limit,
               "--memory-batch", str(args.memory_batch)]
        if args.memory_data:
            cmd += ["--data", str(args.memory_data)]
        out = subprocess.run(cmd, check=True, capture_output=True, text=True).stdout.strip().splitlines()[-1]
        big = json.loads(out)
        print(f"large company: {big['usage_rows']:,} usage rows, {big['frame_rows']:,} feature rows, pipeline "
              f"{big['pipeline_s']:.1f} s ({big['pipeline_s'] / big['bare_s']:.1f}x bare), DuckDB memory_limit "
              f"{args.memory_limit}, {args.memory_batch} snapshots per batch, peak resident memory {big['peak_rss_mb']:,.0f} MB (target < 4,096 MB)")


if __name__ == "__main__":
    main()
