"""The backtest job: replay the monthly job at past month ends on data cut there, against what happened."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd

from features.config import Settings
from features.io import DataError, DataSource
from serving.jobs.as_of import as_of_day
from serving.jobs.errors import InvalidInput, Say, quiet


@dataclass
class BacktestRun:
    """The replay (``training.backtest.BacktestResult``), its cut-offs, the CSVs written and its MLflow run."""

    result: Any
    cutoffs: list[pd.Timestamp]
    written: list[Path]
    run_id: str | None


def backtest_job(source: DataSource, settings: Settings, as_of: dt.date | None = None, *, cutoffs: int | None = 6,
                 start: dt.date | None = None, end: dt.date | None = None, rounds: int = 500, out: Path | None = None,
                 params: dict[str, object] | None = None, say: Say = quiet) -> BacktestRun:
    """Features once over every month end up to ``as_of`` (default: the data end), then the monthly job replayed at
    the newest ``cutoffs`` eligible month ends (or those in [start, end]).

    With ``out``: the pooled figures as CSV there, ``*_cutoffs.csv`` and ``*_books.csv`` beside it,
    and one MLflow run. Raises InvalidInput when no month end fits.
    """
    from features.registry import categorical_features, feature_names
    from features.snapshots import history_features
    from features.spine import month_ends
    from training.backtest import backtest as replay
    from training.backtest import choose_cutoffs

    last = as_of_day(source, as_of, "backtest", say)
    try:
        first = source.span()[0]
    except DataError as exc:
        raise InvalidInput(str(exc)) from exc
    dates = month_ends(first, last)
    if not dates:
        raise InvalidInput(f"no month end between the first usage day {first} and the data end {last}: nothing to replay")
    say(f"building features once for {len(dates)} month ends {dates[0]} .. {dates[-1]} (data ends {last})")
    frame = history_features(source, dates, settings, data_end=last, say=say)
    try:
        chosen = choose_cutoffs(frame, settings.horizon_days, None if (start or end) else cutoffs,
                                pd.Timestamp(start) if start else None, pd.Timestamp(end) if end else None)
        say(f"replaying the monthly job at {len(chosen)} cut-offs: {', '.join(str(c.date()) for c in chosen)}")
        result = replay(frame, feature_names(), categorical_features(), settings, chosen, num_boost_round=rounds)
    except ValueError as exc:
        raise InvalidInput(str(exc)) from exc
    if out is None:
        return BacktestRun(result, chosen, [], None)
    return BacktestRun(result, chosen, write_backtest(result, out), _log(result, settings, params, rounds))


def write_backtest(result, out: Path) -> list[Path]:  # noqa: ANN001 - training.backtest.BacktestResult
    """The pooled figures at ``out``, the per cut-off decisions and per-CSM books beside it."""
    out.parent.mkdir(parents=True, exist_ok=True)
    paths = [out, out.with_name(f"{out.stem}_cutoffs.csv"), out.with_name(f"{out.stem}_books.csv")]
    for frame, path in zip((result.summary, result.cutoffs, result.books), paths):
        frame.to_csv(path, index=False)
    return paths


def _log(result, settings: Settings, params: dict[str, object] | None, rounds: int) -> str:  # noqa: ANN001
    from training.registry import log_backtest

    return log_backtest(result, settings, {**(params or {}), "horizon_days": settings.horizon_days, "max_rounds": rounds})
