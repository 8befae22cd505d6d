"""Generated companies shared by the benchmarks, made once per size and cached under a work folder."""

from __future__ import annotations

import datetime as dt
import time
from pathlib import Path

AS_OF = dt.date(2026, 6, 30)


def company(work: Path, accounts: int, months: int) -> Path:
    """Generate (once) and return the data folder of an ``accounts`` x ``months`` company."""
    from features.synth import generate

    folder = work / f"company_{accounts}_{months}"
    if not (folder / "usage_daily.parquet").exists() and not (folder / "usage_daily").exists():
        started = time.perf_counter()
        generate(folder, accounts=accounts, months=months, seed=5, as_of=AS_OF)
        print(f"generated {accounts:,} accounts x {months} months in {time.perf_counter() - started:.1f} s", flush=True)
    return folder
