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


def monthly_frame(work: Path, accounts: int = 1500, months: int = 18):  # noqa: ANN201 - (frame, settings)
    """Every month end's features of a generated company (seed 5, ending at ``AS_OF``), with the settings used."""
    from features.build import build_features
    from features.config import Settings
    from features.io import open_data
    from features.spine import month_ends

    source = open_data(company(work, accounts, months))
    try:
        first = source.con.execute("SELECT min(date) FROM usage_daily").fetchone()[0]
        settings = Settings(_env_file=None, home=work)
        return build_features(source, month_ends(first, AS_OF), settings), settings
    finally:
        source.close()
