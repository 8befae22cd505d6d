"""Benchmark: importing the 10,000-account company's raw exports into the contract, against a bare DuckDB read of the
same files, time and peak memory, every step in its own process measured in the same run.

Run: ``python benchmarks/bench_import.py [--accounts 10000] [--months 24] [--segment-every 100] [--work DIR]``.
Generates the company (cached), writes its raw Stripe and Salesforce exports (what ``expansion generate --raw
stripe,salesforce`` writes) and Segment tracks for every ``--segment-every``-th account (Segment holds one row per
event: the whole company's billions do not fit here; 0 skips Segment), then runs, each in a fresh Python process
(peak resident memory = that process's ``VmHWM``):

* reference: DuckDB reading every raw file of the source into Arrow (``SELECT *``), nothing else;
* the Stripe and Salesforce importers (read, type, price, build the type-2 history);
* ``import_sources`` of all of them (identity map, write, validate, rename).
"""

from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import sys
import tempfile
import tomllib
from pathlib import Path

import duckdb

sys.path.insert(0, str(Path(__file__).resolve().parent))
from companies import AS_OF, company  # noqa: E402 - a sibling module of this script

# peak resident memory from VmHWM (reset at exec; ru_maxrss would carry the parent's size over the fork)
_CHILD = """
import json, sys, time
started = time.perf_counter()
exec(sys.argv[1])
hwm = [line for line in open("/proc/self/status") if line.startswith("VmHWM")][0].split()[1]
print(json.dumps({"seconds": time.perf_counter() - started, "peak_mb": int(hwm) / 1024, "out": locals().get("out")}))
"""


def _child(code: str) -> dict:
    run = subprocess.run([sys.executable, "-c", _CHILD, code], capture_output=True, text=True,
                         cwd=Path(__file__).resolve().parents[1])
    if run.returncode != 0:
        raise SystemExit(run.stderr)
    return json.loads(run.stdout.strip().splitlines()[-1])


def _bare_read(folder: Path) -> str:
    return f"""
import duckdb
from pathlib import Path
con = duckdb.connect()
out = 0
for f in sorted(Path({str(folder)!r}).glob("*")):
    if f.suffix == ".parquet" or f.is_dir():
        src = f"read_parquet('{{f}}/**/*.parquet')" if f.is_dir() else f"read_parquet('{{f}}')"
    elif f.suffix == ".csv":
        src = f"read_csv('{{f}}', header=true, all_varchar=true)"
    else:
        continue
    out += con.sql(f"SELECT * FROM {{src}}").fetch_arrow_table().num_rows
"""


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--accounts", type=int, default=10_000)
    parser.add_argument("--months", type=int, default=24)
    parser.add_argument("--segment-every", type=int, default=100)
    parser.add_argument("--work", type=Path, default=None)
    args = parser.parse_args()

    from features.synth import raw_shapes

    work = args.work or Path(tempfile.mkdtemp(prefix="bench-import-"))
    data = company(work, args.accounts, args.months)
    raw = work / f"raw_{args.accounts}_{args.months}"
    if not (raw / "stripe").exists():
        shutil.rmtree(raw, ignore_errors=True)
        sf_ids = raw_shapes.salesforce(data, raw / "salesforce")
        raw_shapes.stripe(data, raw / "stripe", sf_ids)
    sources = ["stripe", "salesforce"]
    if args.segment_every and not (raw / "segment").exists():
        sample = work / "segment_sample"
        shutil.rmtree(sample, ignore_errors=True)
        sample.mkdir()
        duckdb.sql(f"""COPY (SELECT * FROM read_parquet('{data / 'usage_daily.parquet'}')
                       WHERE CAST(substr(account_id, 5) AS INTEGER) % {args.segment_every} = 0)
                       TO '{sample / 'usage_daily.parquet'}' (FORMAT parquet)""")
        shutil.copy(data / "accounts.parquet", sample / "accounts.parquet")
        raw_shapes.segment(sample, raw / "segment")
    if args.segment_every:
        sources.append("segment")
    (raw / "import-map.toml").write_text(raw_shapes.MAP_TOML)
    config = tomllib.loads(raw_shapes.MAP_TOML)
    out = work / "imported"
    steps = []
    for source in sources:
        steps.append((f"reference: DuckDB reads every {source} file", _bare_read(raw / source)))
    steps += [
        ("baseline: a Python process importing the importers (included in every importer step)",
         "import features.importers.run\nout = None"),
        ("stripe importer (read, price, type-2 history)",
         f"from features.importers import stripe; from features.importers.reader import open_raw\n"
         f"out = len(stripe.read(open_raw('stripe', {str(raw)!r}), {config['stripe']!r}).tables['subscriptions'])"),
        ("salesforce importer (read)",
         f"from features.importers import salesforce; from features.importers.reader import open_raw\n"
         f"out = len(salesforce.read(open_raw('salesforce', {str(raw)!r}), {{}}).tables['accounts'])"),
        (f"import_sources({', '.join(sources)}): read, identity map, write, validate, rename",
         f"import datetime as dt; from features.importers.run import import_sources\n"
         f"out = import_sources({sources!r}, {str(raw)!r}, {str(out)!r}, {config!r}, dt.date.fromisoformat({AS_OF.isoformat()!r})).rows"),
    ]
    results = []
    for label, code in steps:
        got = _child(code)
        results.append((label, got))
        print(f"{label}: {got['seconds']:.2f} s, peak {got['peak_mb']:.0f} MB ({got['out']})", flush=True)
    size = {s: sum(f.stat().st_size for f in (raw / s).rglob("*") if f.is_file()) / 1e6 for s in sources}
    got = dict(results)
    ref = {s: got[f"reference: DuckDB reads every {s} file"] for s in sources}
    both = {"seconds": sum(r["seconds"] for r in ref.values()), "peak_mb": max(r["peak_mb"] for r in ref.values())}
    against = {label: (ref[label.split()[0]] if label.split()[0] in ref else both) for label, _ in results}
    print(f"\n{args.accounts:,} accounts x {args.months} months; raw files: " + ", ".join(f"{s} {size[s]:.0f} MB" for s in sources))
    print("\nEach importer against DuckDB reading the same source's files; import_sources against all of them "
          "(seconds summed, peak the largest).\n")
    print("| step | seconds | x bare read | peak MB | x bare read |")
    print("|---|---|---|---|---|")
    for label, r in results:
        a = against[label]
        print(f"| {label} | {r['seconds']:.2f} | {r['seconds'] / a['seconds']:.2f} | {r['peak_mb']:.0f} | {r['peak_mb'] / a['peak_mb']:.2f} |")
    print(f"\nload average: {open('/proc/loadavg').read().split()[:3]}")


if __name__ == "__main__":
    main()
