"""The monthly job's feature step with the feature snapshot store: 23 of 24 month ends stored against none.

    python benchmarks/bench_snapshots.py [--accounts 10000] [--months 24] [--repeats 3]

Generates a company (cached under --work), then alternates, ``--repeats`` times: the
feature step of ``retrain`` (``features.snapshots.history_features`` over every month end)
in an empty home, and the same after last month's job stored every month end but the
newest, then the same again with the raw digests' cache emptied (every raw file digested
again, as when this month's files replaced last month's). Wall and CPU seconds (this process,
DuckDB's threads included) of each, and their ratios; the frames of all runs are checked equal.
Last, the newest month end's build alone, its feature SQL compiled afresh against read from
the plan last month's job stored (``features.plans``), alternating.
"""

from __future__ import annotations

import argparse
import resource
import shutil
import tempfile
import time
from pathlib import Path

from companies import AS_OF, company  # noqa: E402 - a sibling module of this script


def _cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def _timed(folder: Path, home: Path, dates: list) -> tuple[float, float, object]:
    from features.config import Settings
    from features.io import open_data
    from features.snapshots import history_features

    source = open_data(folder)
    try:
        wall, cpu = time.perf_counter(), _cpu()
        frame = history_features(source, dates, Settings(_env_file=None, home=home))
        return time.perf_counter() - wall, _cpu() - cpu, frame
    finally:
        source.close()


def _one_month(folder: Path, as_of, work: Path, repeats: int) -> None:  # noqa: ANN001 - a date
    """The newest month end's build alone (``labels=False``, as the store builds it): compiled afresh against its plan stored."""
    import pandas as pd

    from features.build import build_features
    from features.config import Settings
    from features.io import open_data

    home = Path(tempfile.mkdtemp(prefix="plans-", dir=work))
    source = open_data(folder)
    try:
        for _ in range(repeats):
            timed = []
            for plans in (home / "empty", home / "kept"):
                shutil.rmtree(home / "empty", ignore_errors=True)  # no plan: Ibis compiles the statements
                settings = Settings(_env_file=None, home=home, feature_plans=plans)
                if plans.name == "kept" and not plans.exists():
                    build_features(source, [as_of], settings, labels=False)  # last month's job stored the plan
                wall, cpu = time.perf_counter(), _cpu()
                frame = build_features(source, [as_of], settings, labels=False)
                timed.append((time.perf_counter() - wall, _cpu() - cpu, frame))
            pd.testing.assert_frame_equal(timed[0][2], timed[1][2])
            (cw, cc, _), (kw, kc, frame) = timed
            print(f"newest month end alone ({len(frame):,} rows): compiled {cw:.2f} s wall, {cc:.2f} s CPU; plan kept "
                  f"{kw:.2f} s wall, {kc:.2f} s CPU; ratio wall {kw / cw:.3f}x, CPU {kc / cc:.3f}x", flush=True)
    finally:
        source.close()
        shutil.rmtree(home)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--accounts", type=int, default=10_000)
    parser.add_argument("--months", type=int, default=24)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--work", type=Path, default=Path(".expansion/bench"))
    args = parser.parse_args()
    import pandas as pd

    from features.io import open_data
    from features.spine import month_ends

    folder = company(args.work, args.accounts, args.months)
    source = open_data(folder)
    dates = [d for d in month_ends(source.span()[0], AS_OF)][-args.months:]
    source.close()
    rows = []
    for _ in range(args.repeats):
        home = Path(tempfile.mkdtemp(prefix="snapshots-", dir=args.work))  # two homes, removed after the pair
        try:
            none_wall, none_cpu, fresh = _timed(folder, home / "none", dates)
            _timed(folder, home / "stored", dates[:-1])  # last month's job
            part_wall, part_cpu, reused = _timed(folder, home / "stored", dates)
            pd.testing.assert_frame_equal(fresh, reused)
            # The same with every raw file digested again, as when this month's files replaced last month's
            shutil.rmtree(home / "stored" / "snapshots" / "raw_digests", ignore_errors=True)
            shutil.rmtree(home / "stored" / "snapshots" / "features" / f"as_of={dates[-1]}")
            cold_wall, cold_cpu, cold = _timed(folder, home / "stored", dates)
            pd.testing.assert_frame_equal(fresh, cold)
        finally:
            shutil.rmtree(home)
        rows.append((none_wall, none_cpu, part_wall, part_cpu, cold_wall, cold_cpu))
        print(f"none stored: {none_wall:.2f} s wall, {none_cpu:.2f} s CPU; {len(dates) - 1} of {len(dates)} stored: "
              f"{part_wall:.2f} s wall, {part_cpu:.2f} s CPU; ratio wall {part_wall / none_wall:.3f}x, "
              f"CPU {part_cpu / none_cpu:.3f}x; every raw file digested again: {cold_wall:.2f} s wall, "
              f"{cold_cpu:.2f} s CPU, ratio wall {cold_wall / none_wall:.3f}x ({len(fresh):,} feature rows)", flush=True)
    _one_month(folder, dates[-1], args.work, args.repeats)
    for label, i in (("raw digests kept", 2), ("every raw file digested again", 4)):
        walls, cpus = [r[i] / r[0] for r in rows], [r[i + 1] / r[1] for r in rows]
        print(f"{args.accounts:,} accounts x {len(dates)} month ends, {len(rows)} pairs, {label}: wall ratio "
              f"{min(walls):.3f}-{max(walls):.3f}x, CPU ratio {min(cpus):.3f}-{max(cpus):.3f}x (target <= 0.2x)")


if __name__ == "__main__":
    main()
