"""The forecast on a data folder: features at the cut-off, the champions' probabilities, sizes from the past year.

``forecast_data(source, as_of, settings)`` builds the book at the newest month end on or
before ``as_of`` plus the four month ends one horizon apart before it (their complete
labels give the sizes and the contraction rate), loads the champions and returns the
forecast table, its intervals calibrated on past forecasts' errors when given them.
``actuals_at`` gives what happened after past cut-offs, for ``--track`` and that calibration.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

import pandas as pd

from features.build import build_features
from features.config import Settings
from features.io import DataSource
from features.movements import movements
from training.datasets import newest_complete_month_end
from training.forecast import account_expectations, forecast, learn_sizes
from training.forecast_calibration import calibrate, dispersion
from training.forecast_backtest import PERIOD_MONTHS, actuals, contraction_mrr
from training.names import ModelName
from training.registry import load_champion

HISTORY_PERIODS = 4


class ForecastError(ValueError):
    """The forecast cannot run: no champion, or no active account at the cut-off."""


@dataclass
class ForecastResult:
    """A forecast table and what it rests on."""

    as_of: dt.date
    horizon_days: int
    table: pd.DataFrame  # one row per group: point and 80 % / 95 % ends of every measure
    models: dict[str, str]  # model name -> version
    run_id: str
    calibration: pd.DataFrame  # training.forecast_calibration.dispersion: per group and measure, from past forecasts


def _month_ends_back(cutoff: dt.date, periods: int) -> list[dt.date]:
    out = []
    for k in range(periods, 0, -1):
        day = (pd.Timestamp(cutoff) - pd.DateOffset(months=PERIOD_MONTHS * k) + pd.offsets.MonthEnd(0)).date()
        out.append(day)
    return out


def frame_with_contraction(source: DataSource, dates: list[dt.date], settings: Settings) -> pd.DataFrame:
    """The feature frame at ``dates`` with ``contraction_mrr`` over each row's horizon."""
    frame = build_features(source, dates, settings)
    moves = movements(source.ibis().table("subscriptions")).execute()
    frame["contraction_mrr"] = contraction_mrr(moves, frame, settings.horizon_days).to_numpy()
    return frame


def forecast_data(source: DataSource, as_of: dt.date, settings: Settings, *, draws: int = 2000, seed: int = 0,
                  models: dict | None = None, track: pd.DataFrame | None = None) -> ForecastResult:
    """The forecast at the newest month end on or before ``as_of``, with the champions (or ``models`` given).

    ``track`` holds past forecasts' standardised errors (``training.forecast_calibration.standardised``); those whose
    horizon has passed by the cut-off calibrate the intervals. Without it the intervals are the draws' own.
    """
    cutoff = newest_complete_month_end(as_of)
    frame = frame_with_contraction(source, [*_month_ends_back(cutoff, HISTORY_PERIODS), cutoff], settings)
    if models is None:
        models = {name: load_champion(name, settings) for name in (ModelName.expansion, ModelName.churn)}
    missing = [n for n, m in models.items() if m is None]
    if missing:
        raise ForecastError(f"no champion for {', '.join(missing)}: train first (expansion train --data DIR)")
    when = pd.to_datetime(frame["as_of"])
    book = frame.loc[when == pd.Timestamp(cutoff)]
    if book.empty:
        raise ForecastError(f"no account has MRR > 0 at {cutoff}")
    history = frame.loc[(when + pd.Timedelta(days=settings.horizon_days) <= pd.Timestamp(cutoff)) & frame["expanded"].notna()]
    sizes = learn_sizes(history)
    acc = account_expectations(book, models[ModelName.expansion].predict_proba(book),
                               models[ModelName.churn].predict_proba(book), sizes)
    calibration = dispersion(track, pd.Timestamp(cutoff), settings.horizon_days)
    table = calibrate(forecast(acc, sizes, seed=seed, draws=draws), calibration)
    versions = {str(n): str(m.version) for n, m in models.items()}
    run_id = f"forecast-{cutoff.isoformat()}-h{settings.horizon_days}-" + "-".join(f"{n}{v}" for n, v in versions.items())
    return ForecastResult(cutoff, settings.horizon_days, table, versions, run_id, calibration)


def actuals_at(source: DataSource, cutoffs: list[dt.date], settings: Settings) -> pd.DataFrame:
    """What happened over the horizon after each cut-off, per group (``as_of``, ``group`` and the measures)."""
    if not cutoffs:
        return pd.DataFrame()
    frame = frame_with_contraction(source, sorted(set(cutoffs)), settings)
    out = []
    for day, book in frame.groupby(pd.to_datetime(frame["as_of"])):
        if book["expanded"].isna().any():
            continue  # horizon not complete in the data
        out.append(actuals(book).reset_index().assign(as_of=day.date()))
    return pd.concat(out, ignore_index=True) if out else pd.DataFrame()
