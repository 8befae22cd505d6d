"""DuckDB against Spark local mode for the same feature definitions, on one machine.

    python benchmarks/bench_spark.py [--accounts 10000 50000] [--months 12] [--snapshots 6]
        [--master local[*]] [--work DIR]

For each company size it generates a company (cached under --work), then builds the
feature frame of the last ``--snapshots`` month ends and writes it as Parquet, once
with DuckDB (the reference) and once with Spark, each in a fresh child process. It
reports wall time (Spark also without its session start-up), usage rows per second and
the peak resident memory of the child's whole process tree (the JVM and Python workers
included), sampled every 0.1 s, and the Spark / DuckDB ratios.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import psutil
from companies import AS_OF, company  # noqa: E402 - a sibling module of this script


def snapshot_dates(count: int) -> list[dt.date]:
    from features.spine import month_ends

    return month_ends(dt.date(AS_OF.year - 2, 1, 1), AS_OF)[-count:]


def run_child(engine: str, data: Path, out: Path, snapshots: int, master: str) -> dict:
    """Build features in this process (called in the child) and return its timings."""
    from features.config import Settings

    settings = Settings(_env_file=None, spark_master=master, home=out.parent / "home")  # state beside the output, not in ./
    dates = snapshot_dates(snapshots)
    started = time.perf_counter()
    if engine == "duckdb":
        from features.build import build_features
        from features.io import open_data

        source = open_data(data)
        frame = build_features(source, dates, settings)
        frame.to_parquet(out, index=False)
        rows = len(frame)
        return {"wall_s": time.perf_counter() - started, "compute_s": time.perf_counter() - started, "rows": rows}
    from features.engines import open_engine, spark_feature_frame, write_partitioned
    from features.portable import spark_session_of

    engine_tables = open_engine("spark", settings, data=data)
    ready = time.perf_counter()
    frame, release = spark_feature_frame(engine_tables, dates, settings)
    write_partitioned(frame, str(out))
    release()
    rows = spark_session_of(engine_tables.backend).read.parquet(str(out)).count()
    done = time.perf_counter()
    return {"wall_s": done - started, "compute_s": done - ready, "rows": rows}


def tree_rss(process: psutil.Process) -> int:
    """Resident bytes of a process and all its descendants (the JVM and Python workers)."""
    total = 0
    for p in [process, *process.children(recursive=True)]:
        try:
            total += p.memory_info().rss
        except psutil.NoSuchProcess:
            continue
    return total


def measure(engine: str, data: Path, snapshots: int, master: str, work: Path) -> dict:
    """Run one engine in a child process, sampling its process tree's memory."""
    out = Path(tempfile.mkdtemp(dir=work)) / ("features.parquet" if engine == "duckdb" else "features")
    cmd = [sys.executable, __file__, "--child", engine, "--data", str(data), "--out", str(out),
           "--snapshots", str(snapshots), "--master", master]
    log = out.parent / f"{engine}.log"
    with open(log, "w") as stderr:
        child = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=stderr, text=True)
    proc, peak = psutil.Process(child.pid), 0
    while child.poll() is None:
        try:
            peak = max(peak, tree_rss(proc))
        except psutil.NoSuchProcess:
            break
        time.sleep(0.1)
    output = child.stdout.read() if child.stdout else ""
    if child.returncode != 0:
        raise RuntimeError(f"{engine} child failed with exit code {child.returncode}; see {log}")
    result = json.loads(output.strip().splitlines()[-1])
    return {**result, "peak_rss_mb": peak / 2**20}


def usage_rows(data: Path) -> int:
    import duckdb

    path = data / "usage_daily.parquet"
    pattern = str(path) if path.exists() else str(data / "usage_daily" / "**" / "*.parquet")
    return duckdb.connect().execute(f"SELECT count(*) FROM read_parquet('{pattern}')").fetchone()[0]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--accounts", type=int, nargs="+", default=[10_000, 50_000])
    parser.add_argument("--months", type=int, default=12)
    parser.add_argument("--snapshots", type=int, default=6)
    parser.add_argument("--master", default="local[*]")
    parser.add_argument("--work", type=Path, default=Path(tempfile.gettempdir()) / "expansion-bench-spark")
    parser.add_argument("--child", choices=["duckdb", "spark"], help=argparse.SUPPRESS)
    parser.add_argument("--data", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--out", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        print(json.dumps(run_child(args.child, args.data, args.out, args.snapshots, args.master)))
        return
    args.work.mkdir(parents=True, exist_ok=True)
    print(f"{'accounts':>9} {'engine':>7} {'wall s':>8} {'compute s':>10} {'usage rows/s':>13} {'peak RSS MB':>12} {'rows out':>9}")
    for accounts in args.accounts:
        data = company(args.work, accounts, args.months)
        n_usage = usage_rows(data)
        results = {e: measure(e, data, args.snapshots, args.master, args.work) for e in ("duckdb", "spark")}
        for engine, r in results.items():
            print(f"{accounts:>9,} {engine:>7} {r['wall_s']:>8.1f} {r['compute_s']:>10.1f} "
                  f"{n_usage / r['compute_s']:>13,.0f} {r['peak_rss_mb']:>12,.0f} {r['rows']:>9,}")
        duck, spark = results["duckdb"], results["spark"]
        print(f"{accounts:>9,}  ratio spark/duckdb: wall {spark['wall_s'] / duck['wall_s']:.1f}x, "
              f"compute {spark['compute_s'] / duck['compute_s']:.1f}x, memory {spark['peak_rss_mb'] / duck['peak_rss_mb']:.1f}x "
              f"({n_usage:,} usage rows, {args.snapshots} snapshots)", flush=True)


if __name__ == "__main__":
    main()
