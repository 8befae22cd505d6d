"""The forecast jobs: next-horizon expansion, contraction, churned ARR and NRR; their track record; their backtest.

Each is one call on a source, settings (``horizon_days`` is the horizon) and an as-of
(default: the data end). Forecasts and the backtest's record live in the forecast store
(``store``, default: the product store, EXPANSION_STORE_URI).
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from dataclasses import dataclass

import pandas as pd

from features.config import Settings
from features.io import DataError, DataSource
from serving.jobs.as_of import as_of_day
from serving.jobs.errors import InvalidInput, RegistryError, Say, quiet

# the calibration reads at most this many past cut-offs (two years of monthly forecasts): their actuals come from one
# feature build over those month ends (24 took 6.0 s at 10,000 accounts), and older errors say little of today's forecast
TRACK_RECORD_CUTOFFS = 24


def _now() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


def forecast_job(source: DataSource, settings: Settings, as_of: dt.date | None = None, *, store: str | None = None,
                 draws: int = 2000, clock: Callable[[], dt.datetime] = _now,
                 say: Say = quiet):  # noqa: ANN201 - training.forecast_job.ForecastResult
    """Forecast from the newest month end on or before ``as_of``, calibrated on the stored track record; store and log it.

    Raises RegistryError when there is no champion to forecast with.
    """
    from serving.store.forecasts import ForecastStore
    from training.forecast_calibration import standardised
    from training.forecast_job import ForecastError, forecast_data
    from training.forecast_tracking import log_forecast

    day = as_of_day(source, as_of, "forecast", say)
    forecasts = ForecastStore(store or settings)
    try:
        past = past_against_actual(source, settings, forecasts.read(), outcomes_known(source, day),
                                   newest=TRACK_RECORD_CUTOFFS)
        if len(past):  # one forecast per cut-off, group and measure: the newest stored (a re-run with other models replaces)
            past = past.sort_values("stored_at").drop_duplicates(["as_of", "group_name", "measure"], keep="last")
        if len(past):  # the model's calibration reads the model's own past points, whichever method served
            past = past.assign(forecast=pd.to_numeric(past["model_forecast"], errors="coerce").fillna(past["forecast"]))
        record = standardised(past.rename(columns={"group_name": "group"})) if len(past) else None
        try:
            result = forecast_data(source, day, settings, draws=draws, track=record,
                                   record=forecasts.read_record(settings.horizon_days))
        except ForecastError as exc:
            raise RegistryError(str(exc)) from exc
        forecasts.write(result.run_id, result.as_of, result.horizon_days, result.table, result.models, clock())
    finally:
        forecasts.close()
    log_forecast(result, settings)
    return result


@dataclass
class ForecastTrack:
    """Stored forecasts whose horizon has passed by ``data_end``, beside what happened; how many rows were stored."""

    table: pd.DataFrame
    data_end: dt.date
    stored_rows: int


def forecast_track_job(source: DataSource, settings: Settings, as_of: dt.date | None = None, *,
                       store: str | None = None, say: Say = quiet) -> ForecastTrack:
    """Past forecasts of this horizon against what happened, once their horizon passed by ``as_of`` (default: the data end)."""
    from serving.store.forecasts import ForecastStore

    day = as_of_day(source, as_of, "forecast", say)
    forecasts = ForecastStore(store or settings)
    try:
        stored = forecasts.read()
    finally:
        forecasts.close()
    end = outcomes_known(source, day)
    return ForecastTrack(past_against_actual(source, settings, stored, end), end, len(stored))


@dataclass
class ForecastBacktest:
    """The backtest per cut-off (``results``), summarised per window, group and method, and its MLflow run."""

    results: pd.DataFrame
    summary: pd.DataFrame
    run_id: str


def forecast_backtest_job(source: DataSource, settings: Settings, *, store: str | None = None, rounds: int = 300,
                          draws: int = 2000, params: dict[str, object] | None = None,
                          clock: Callable[[], dt.datetime] = _now) -> ForecastBacktest:
    """Replay the forecast at every past cut-off against two naive forecasts; store the record the live choice reads."""
    from features.registry import categorical_features, feature_names
    from features.spine import month_ends
    from serving.store.forecasts import ForecastStore
    from training.forecast_backtest import backtest_with_record, summarize_backtest
    from training.forecast_job import frame_with_contraction
    from training.forecast_tracking import log_forecast_backtest

    try:
        first, last = source.span()
    except DataError as exc:
        raise InvalidInput(str(exc)) from exc
    frame = frame_with_contraction(source, month_ends(first, last), settings)
    try:
        results, record = backtest_with_record(frame, feature_names(), categorical_features(), settings,
                                               max_rounds=rounds, draws=draws)
    except ValueError as exc:
        raise InvalidInput(str(exc)) from exc
    if results.empty:
        raise InvalidInput("no cut-off has a year of complete history before it (the trailing naive forecast needs "
                           "four periods)")
    summary = summarize_backtest(results)
    forecasts = ForecastStore(store or settings)
    try:
        forecasts.write_record(settings.horizon_days, record, clock())
    finally:
        forecasts.close()
    run = log_forecast_backtest(results, summary, settings, {**(params or {}), "horizon_days": settings.horizon_days,
                                                             "max_rounds": rounds, "draws": draws})
    return ForecastBacktest(results, summary, run)


def outcomes_known(source: DataSource, as_of: dt.date) -> dt.date:
    """``as_of``, or the data end when that is earlier: outcomes are known up to there."""
    return min(as_of, source.data_end().day)


def past_against_actual(source: DataSource, settings: Settings, stored: pd.DataFrame, data_end: dt.date,
                        newest: int | None = None) -> pd.DataFrame:
    """Stored forecasts of this horizon whose horizon has passed by ``data_end`` (the ``newest`` cut-offs of them
    when given), beside what happened (``serving.store.forecasts.track``)."""
    from serving.store.forecasts import track
    from training.forecast_job import actuals_at

    horizon = settings.horizon_days
    if not stored.empty:
        stored = stored.loc[stored["horizon_days"].astype(int) == horizon]
    if stored.empty:
        return track(stored, pd.DataFrame(), data_end)
    due = sorted({d for d in pd.to_datetime(stored["as_of"]).dt.date if d + dt.timedelta(days=horizon) <= data_end})
    due = due[-newest:] if newest else due
    stored = stored.loc[pd.to_datetime(stored["as_of"]).dt.date.isin(due)]
    return track(stored, actuals_at(source, due, settings), data_end)
