"""The forecast on a data folder: features at the cut-off, the champions' probabilities, sizes from the past year.

``forecast_data(source, as_of, settings)`` builds the book at the newest month end on or
before ``as_of`` plus the four month ends one horizon apart before it (their complete
labels give the sizes and the contraction rate), loads the champions and returns the
model's forecast table, its intervals calibrated on past forecasts' errors when given them;
then, per group and measure, the method with the best record on the company's own past
cut-offs serves (``training.forecast_choice``; the record is the backtest's, stored by
``expansion forecast --backtest``), the naive mean of four until that record is long enough.
``actuals_at`` gives what happened after past cut-offs, for ``--track`` and that calibration.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

import pandas as pd

from features.config import Settings
from features.io import DataSource
from features.movements import movements
from features.snapshots import history_features
from training.datasets import newest_complete_month_end
from training.forecast import MEASURES, account_expectations, forecast, learn_sizes
from training.forecast_calibration import calibrate, dispersion
from training.forecast_backtest import NAIVE_PERIODS, PERIOD_MONTHS, actuals, contraction_mrr, live_at, naive
from training.forecast_choice import candidate_history, long_rows
from training.forecast_serve import served_history
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
    model_table: pd.DataFrame | None = None  # the model's own forecast (draws, calibrated), whatever serves
    choice: pd.DataFrame | None = None  # training.forecast_choice.choose: the method in force per group and measure


def _month_ends_back(cutoff: dt.date, periods: int) -> list[dt.date]:
    out = []
    for k in range(periods, 0, -1):
        day = (pd.Timestamp(cutoff) - pd.DateOffset(months=PERIOD_MONTHS * k) + pd.offsets.MonthEnd(0)).date()
        out.append(day)
    return out


def frame_with_contraction(source: DataSource, dates: list[dt.date], settings: Settings) -> pd.DataFrame:
    """The feature frame at ``dates`` with ``contraction_mrr`` over each row's horizon."""
    frame = history_features(source, dates, settings)
    moves = movements(source.ibis().table("subscriptions")).execute()
    frame["contraction_mrr"] = contraction_mrr(moves, frame, settings.horizon_days).to_numpy()
    return frame


def forecast_data(source: DataSource, as_of: dt.date, settings: Settings, *, draws: int = 2000, seed: int = 0,
                  models: dict | None = None, track: pd.DataFrame | None = None,
                  record: pd.DataFrame | None = None) -> ForecastResult:
    """The forecast at the newest month end on or before ``as_of``, with the champions (or ``models`` given).

    ``track`` holds past forecasts' standardised errors (``training.forecast_calibration.standardised``); those whose
    horizon has passed by the cut-off calibrate the model's intervals. Without it they are the draws' own.
    ``record`` holds the backtest's base rows (``training.forecast_choice.TRACK``, stored by ``forecast --backtest``):
    the method that serves each group and measure is chosen on them; without them the naive mean of four serves.
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
    sizes = learn_sizes(history, settings.horizon_days)
    acc = account_expectations(book, models[ModelName.expansion].predict_proba(book),
                               models[ModelName.churn].predict_proba(book), sizes)
    calibration = dispersion(track, pd.Timestamp(cutoff), settings.horizon_days)
    model_table = calibrate(forecast(acc, sizes, seed=seed, draws=draws), calibration)
    table, choice = choose_and_serve(frame, book, model_table, record, pd.Timestamp(cutoff), settings.horizon_days)
    versions = {str(n): str(m.version) for n, m in models.items()}
    run_id = f"forecast-{cutoff.isoformat()}-h{settings.horizon_days}-" + "-".join(f"{n}{v}" for n, v in versions.items())
    return ForecastResult(cutoff, settings.horizon_days, table, versions, run_id, calibration, model_table, choice)


def choose_and_serve(frame: pd.DataFrame, book: pd.DataFrame, model_table: pd.DataFrame, record: pd.DataFrame | None,
                     cutoff: pd.Timestamp, horizon_days: int) -> tuple[pd.DataFrame, pd.DataFrame]:
    """The served table (``training.forecast_choice.serve``, with ``accounts`` and the model's ``{m}_draw_sd``) and
    the choice, from the model's table, both naive forecasts on ``frame`` and ``record`` (the backtest's base rows)."""
    model = model_table.set_index("group")
    now = [long_rows(cutoff, "model", model, None)]
    for method, periods in (("naive_last", 1), ("naive_mean4", NAIVE_PERIODS)):
        f = naive(frame, cutoff, book, periods, min_periods=1)  # the naive mean over up to four periods
        if f is not None:
            now.append(long_rows(cutoff, method, f, None))
    past_rows = record.loc[pd.to_datetime(record["cutoff"]) < cutoff] if record is not None and len(record) else None
    history = candidate_history(past_rows, horizon_days) if past_rows is not None else pd.DataFrame()
    track = pd.concat([*([past_rows] if past_rows is not None else []), *now], ignore_index=True)
    live = served_history(history, horizon_days) if len(history) else None
    table, _, choice = live_at(track, history, cutoff, frame, model, horizon_days, live)
    table.insert(1, "accounts", table["group"].map(model["accounts"]).astype(int).to_numpy())
    for m in MEASURES:  # the model's own point and draws' sd are kept whatever serves: they calibrate later model forecasts
        table[f"{m}_model"] = table["group"].map(model[m]).to_numpy(dtype=float)
        table[f"{m}_draw_sd"] = table["group"].map(model[f"{m}_draw_sd"]).to_numpy(dtype=float)
    table["track_record"] = table["group"].map(model["track_record"]).to_numpy(dtype=float)
    return table, choice


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
