"""Benchmark: importing the 10,000-account company's raw exports (Stripe, Salesforce, Segment) into the contract.

Run: ``python benchmarks/bench_import.py [--accounts 10000] [--months 24] [--segment-every 100]``.
Generates the company (cached), writes its raw exports, and times each importer and the whole
``import_sources`` (read, identity map, write, validate, rename). Reference, measured in the same
run: ``validate`` on the generator's own contract folder (what every import ends with anyway).

Segment holds one row per event: the full company has billions of them (printed below), more
than this machine can write, so Segment tracks are written for every ``--segment-every``-th
account and the full-company time for Segment is extrapolated from the measured rows per second.
"""

from __future__ import annotations

import argparse
import shutil
import tempfile
import time
import tomllib
from pathlib import Path

import sys

import duckdb

sys.path.insert(0, str(Path(__file__).resolve().parent))
from companies import AS_OF, company  # noqa: E402 - a sibling module of this script


def _timed(label: str, fn, results: list) -> object:  # noqa: ANN001
    start = time.perf_counter()
    out = fn()
    results.append((label, time.perf_counter() - start))
    print(f"{label}: {results[-1][1]:.2f} s", flush=True)
    return out


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--accounts", type=int, default=10_000)
    parser.add_argument("--months", type=int, default=24)
    parser.add_argument("--segment-every", type=int, default=100)
    parser.add_argument("--work", type=Path, default=None)
    parser.add_argument("--reuse-raw", action="store_true", help="keep raw exports written by an earlier run in --work")
    args = parser.parse_args()

    from features.importers import events, salesforce, stripe
    from features.importers.reader import open_raw
    from features.importers.run import import_sources
    from features.io import open_data
    from features.synth import raw_shapes
    from features.validate import validate

    work = args.work or Path(tempfile.mkdtemp(prefix="bench-import-"))
    data = company(work, args.accounts, args.months)
    raw = work / f"raw_{args.accounts}_{args.months}"
    results: list[tuple[str, float]] = []
    con = duckdb.connect()
    total_events, total_rows = con.execute(f"SELECT sum(events), count(*) FROM read_parquet('{data / 'usage_daily.parquet'}')").fetchone()
    if not (args.reuse_raw and (raw / "segment" / "tracks.parquet").exists()):
        shutil.rmtree(raw, ignore_errors=True)
        sf_ids = _timed("write raw salesforce", lambda: raw_shapes.salesforce(data, raw / "salesforce"), results)
        _timed("write raw stripe", lambda: raw_shapes.stripe(data, raw / "stripe", sf_ids), results)
        sample = work / "segment_sample"
        shutil.rmtree(sample, ignore_errors=True)
        sample.mkdir()
        con.execute(f"""COPY (SELECT * FROM read_parquet('{data / 'usage_daily.parquet'}')
                        WHERE CAST(substr(account_id, 5) AS INTEGER) % {args.segment_every} = 0)
                        TO '{sample / 'usage_daily.parquet'}' (FORMAT parquet)""")
        shutil.copy(data / "accounts.parquet", sample / "accounts.parquet")
        _timed("write raw segment (sample)", lambda: raw_shapes.segment(sample, raw / "segment"), results)
    tracks = con.execute(f"SELECT count(*) FROM read_parquet('{raw / 'segment' / 'tracks.parquet'}')").fetchone()[0]
    con.close()
    (raw / "import-map.toml").write_text(raw_shapes.MAP_TOML)
    config = tomllib.loads(raw_shapes.MAP_TOML)

    _timed("import stripe (read + type-2 history)", lambda: stripe.read(open_raw("stripe", raw), config["stripe"]), results)
    _timed("import salesforce (read)", lambda: salesforce.read(open_raw("salesforce", raw), {}), results)
    _timed("import segment tracks (sample)", lambda: events.read(open_raw("segment", raw), config["segment"]), results)
    seg_seconds = results[-1][1]
    rows = _timed("import_sources: all three, write, validate, rename",
                  lambda: import_sources(["stripe", "salesforce", "segment"], raw, work / "imported", config, AS_OF).rows, results)

    def reference() -> None:
        source = open_data(data)
        try:
            validate(source, AS_OF)
        finally:
            source.close()

    _timed("reference: validate the generator's own folder", reference, results)
    ref_seconds = results[-1][1]
    rate = tracks / seg_seconds
    print(f"\n{args.accounts:,} accounts x {args.months} months; rows imported: {rows}")
    print(f"segment sample: {tracks:,} track rows ({args.segment_every}th accounts) at {rate:,.0f} rows/s")
    print(f"full company: {total_events:,} events in {total_rows:,} usage rows -> Segment tracks extrapolated "
          f"{total_events / rate / 60:,.0f} min at that rate")
    print("\n| step | seconds | x reference |")
    print("|---|---|---|")
    for label, seconds in results:
        print(f"| {label} | {seconds:.2f} | {seconds / ref_seconds:.2f} |")
    print(f"\nload average: {open('/proc/loadavg').read().split()[:3]}")


if __name__ == "__main__":
    main()
