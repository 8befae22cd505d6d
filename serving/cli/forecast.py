"""``expansion forecast``: next-horizon expansion, contraction and churned ARR and NRR with intervals; its backtest and track record."""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path
from typing import Annotated

import pandas as pd
import typer
from rich.table import Table

from serving.cli.common import EXIT_REGISTRY, as_of_or_data_end, console, fail, open_source, settings


# the calibration reads at most this many past cut-offs (two years of monthly forecasts): their actuals come from one
# feature build over those month ends (24 took 6.0 s at 10,000 accounts), and older errors say little of today's forecast
TRACK_RECORD_CUTOFFS = 24


def _money(v: float) -> str:
    return f"{v:,.0f}"


def print_forecast(table: pd.DataFrame, title: str) -> None:
    """The forecast per group: point and [80 %] / [95 %] ranges."""
    t = Table(title=title)
    for col in ("group", "accounts", "start ARR", "expansion ARR", "contraction ARR", "churned ARR", "NRR %"):
        t.add_column(col, justify="left" if col == "group" else "right")
    for r in table.to_dict("records"):
        cells = []
        for m in ("expansion_arr", "contraction_arr", "churned_arr", "nrr_pct"):
            f = (lambda v: f"{v:.1f}") if m == "nrr_pct" else _money
            cells.append(f"{f(r[m])}\n80% {f(r[m + '_low80'])}-{f(r[m + '_high80'])}\n95% {f(r[m + '_low95'])}-{f(r[m + '_high95'])}")
        t.add_row(r["group"], str(r["accounts"]), _money(r["starting_arr"]), *cells)
    console.print(t)


METHOD_WORDS = {"model": "the model", "naive_last": "last period's rates", "naive_mean4": "mean of the last four periods' rates",
                "blend": "a blend of the three, weighted by past error"}


def choice_lines(table: pd.DataFrame) -> list[str]:
    """Per group and measure: the method in force, its past error with its footing, and what the interval rests on."""
    from training.forecast import MEASURES

    out = []
    for r in table.to_dict("records"):
        for m in MEASURES:
            n = r.get(f"{m}_past_cutoffs")
            err, bias, shift = r.get(f"{m}_past_error_pts"), r.get(f"{m}_bias_pts"), r.get(f"{m}_shift_pts") or 0.0
            unit = "NRR points" if m == "nrr_pct" else "points of starting ARR"
            record = (f"typical past miss {err:.2f} {unit} (median signed {bias:+.2f}) over {int(n)} past cut-off(s)"
                      if n and err == err else "no past cut-off with an outcome yet")
            fix = f"; corrected by {-shift:+.2f} for its one-sided past errors" if shift else ""
            out.append(f"{r['group']} {m}: {METHOD_WORDS.get(r[f'{m}_method'], r[f'{m}_method'])}; {record}{fix}; "
                       f"interval: {r[f'{m}_interval']}")
    return out


def print_choice(table: pd.DataFrame) -> None:
    console.print("which forecast serves (the lowest error on this company's own past cut-offs; the naive mean "
                  "of four until every candidate has a record):", highlight=False)
    for line in choice_lines(table):
        console.print(f"  {line}", highlight=False)


def print_backtest(summary: pd.DataFrame) -> None:
    """The backtest per window, group and method; interval cells are held / cut-offs."""
    titles = {"common": "cut-offs where every method ran (a year of history): the comparison",
              "every": "every cut-off each method ran at (the model's out of time at each)"}
    for window, part in summary.groupby("window", sort=False):
        t = Table(title=f"forecast backtest, next-horizon expansion ARR and NRR: {titles.get(window, window)}")
        for col in ("group", "method", "cut-offs", "MdAPE exp % (n)", "bias exp % (above)", "MdAE exp pts ARR",
                    "NRR MAE pts", "exp 80%", "exp 95%", "NRR 80%", "NRR 95%"):
            t.add_column(col, justify="left" if col in ("group", "method") else "right")
        for r in part.to_dict("records"):
            held = [f"{r[f'{k}_held']}/{r[f'{k}_trials']}" if r[f"{k}_trials"] else "-"
                    for k in ("expansion_in80", "expansion_in95", "nrr_in80", "nrr_in95")]
            zero = f", {r['zero_actual_cutoffs']} at 0" if r["zero_actual_cutoffs"] else ""
            t.add_row(r["group"], r["method"], str(r["cutoffs"]), f"{r['expansion_mdape_pct']:.1f} ({r['mdape_cutoffs']}{zero})",
                      f"{r['expansion_bias_pct']:+.1f} ({r['expansion_above']}/{r['cutoffs']})",
                      f"{r['expansion_mdae_pts']:.2f}", f"{r['nrr_mae_pts']:.2f}", *held)
        console.print(t)
        pooled = part.loc[(part["group"] == "segments") & (part["method"].isin(["model", "live"]))]
        for r in pooled.to_dict("records"):
            cells = "; ".join(f"{level} %: {r[f'expansion_in{level}_held']}/{r[f'expansion_in{level}_trials']} "
                              f"({r[f'expansion_in{level}_pct']:.0f} %, 95 % CI {r[f'expansion_in{level}_ci'][0]:.0f}-"
                              f"{r[f'expansion_in{level}_ci'][1]:.0f})" for level in (80, 95))
            console.print(f"{r['method']}'s expansion ARR intervals over cut-offs x segments, held: {cells}")


def forecast(
    data: Annotated[Path, typer.Option("--data", help="Folder with the canonical tables.")],
    horizon_days: Annotated[int, typer.Option("--horizon-days", min=1, help="Forecast horizon in days.")] = 90,
    as_of: Annotated[str | None, typer.Option("--as-of", help="Forecast from the newest month end on or before this date (default: the data end, its last complete usage_daily day).")] = None,
    track: Annotated[bool, typer.Option("--track", help="Show stored forecasts beside what happened once their horizon passed.")] = False,
    backtest: Annotated[bool, typer.Option("--backtest", help="Replay the forecast at every past cut-off against two naive forecasts.")] = False,
    store: Annotated[str | None, typer.Option("--store", help="SQL store of forecasts (default: the CRM database under home).")] = None,
    rounds: Annotated[int, typer.Option("--rounds", min=1, help="Most boosting rounds in the backtest.")] = 300,
    draws: Annotated[int, typer.Option("--draws", min=100, help="Monte Carlo draws behind the intervals.")] = 2000,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON instead of a table.")] = False,
) -> None:
    """Expansion, contraction and churned ARR and NRR over the next horizon, total and per segment, with 80 % and 95 % intervals."""
    import logging

    logging.getLogger("mlflow").setLevel(logging.ERROR)
    cfg = settings().model_copy(update={"horizon_days": horizon_days})
    source = open_source(data)
    uri = store or cfg.crm_uri
    if backtest:
        return _backtest(source, data, cfg, rounds, draws, as_json, store)
    if track:
        return _track(source, cfg, uri, as_of_or_data_end(as_of, source, command="forecast"), as_json)
    from serving.forecast_store import ForecastStore
    from training.forecast_calibration import standardised
    from training.forecast_job import ForecastError, forecast_data
    from training.forecast_tracking import log_forecast

    day, forecasts = as_of_or_data_end(as_of, source, command="forecast"), ForecastStore(uri)
    past = _past_against_actual(source, cfg, forecasts.read(), _data_end(source, day), newest=TRACK_RECORD_CUTOFFS)
    if len(past):  # one forecast per cut-off, group and measure: the newest stored (a re-run with other models replaces)
        past = past.sort_values("stored_at").drop_duplicates(["as_of", "group_name", "measure"], keep="last")
    if len(past):  # the model's calibration reads the model's own past points, whichever method served
        past = past.assign(forecast=pd.to_numeric(past["model_forecast"], errors="coerce").fillna(past["forecast"]))
    record = standardised(past.rename(columns={"group_name": "group"})) if len(past) else None
    try:
        result = forecast_data(source, day, cfg, draws=draws, track=record, record=forecasts.read_record(horizon_days))
    except ForecastError as exc:
        fail(str(exc), EXIT_REGISTRY)
    forecasts.write(result.run_id, result.as_of, result.horizon_days, result.table, result.models,
                    dt.datetime.now(dt.timezone.utc))
    log_forecast(result, cfg)
    if as_json:
        print(json.dumps({"run_id": result.run_id, "as_of": result.as_of.isoformat(), "horizon_days": horizon_days,
                          "models": result.models, "groups": result.table.to_dict("records"),
                          "calibration": result.calibration.to_dict("records"),
                          "choice": result.choice.to_dict("records")}, indent=1, default=str))
        return
    print_forecast(result.table, f"next {horizon_days} days from {result.as_of} (models {result.models}); stored as {result.run_id}")
    print_choice(result.table)
    console.print(calibration_line(result.calibration))


def calibration_line(calibration: pd.DataFrame) -> str:
    """One sentence on what the intervals rest on: the draws alone, or the track record of past forecasts."""
    from training.forecast_calibration import MIN_EFFECTIVE

    part = calibration.loc[calibration["measure"] == "expansion_arr"] if len(calibration) else calibration
    if part.empty or part["effective"].max() < MIN_EFFECTIVE:
        n = int(part["residuals"].max()) if len(part) else 0
        return (f"the model's intervals: the draws' own. {n} past forecast(s) have outcomes so far; calibration on the track record "
                f"starts at {MIN_EFFECTIVE:g} independent horizons' worth (about 4 monthly forecasts).")
    phi = ", ".join(f"{r['group']} {r['phi']:.2f}" for r in part.to_dict("records"))
    first = part.iloc[0]
    return (f"the model's intervals calibrated on {int(first['residuals'])} past forecasts (worth {first['effective']:.1f} independent "
            f"horizons); expansion ARR's squared error over the draws' variance: {phi} (1 = the draws were right).")


def _backtest(source, data: Path, cfg, rounds: int, draws: int, as_json: bool, store: str | None) -> None:  # noqa: ANN001
    from features.build import tables_from_backend, usage_span
    from features.registry import categorical_features, feature_names
    from features.spine import month_ends
    from training.forecast_backtest import backtest_with_record, summarize_backtest
    from training.forecast_job import frame_with_contraction
    from training.forecast_tracking import log_forecast_backtest

    first, last = usage_span(tables_from_backend(source.ibis(), source.present))
    frame = frame_with_contraction(source, month_ends(first, last), cfg)
    try:
        results, record = backtest_with_record(frame, feature_names(), categorical_features(), cfg, max_rounds=rounds,
                                               draws=draws)
    except ValueError as exc:
        fail(str(exc))
    if results.empty:
        fail("no cut-off has a year of complete history before it (the trailing naive forecast needs four periods)")
    summary = summarize_backtest(results)
    from serving.forecast_store import ForecastStore

    forecasts = ForecastStore(store or cfg.crm_uri)
    try:
        forecasts.write_record(cfg.horizon_days, record, dt.datetime.now(dt.timezone.utc))
    finally:
        forecasts.close()
    run = log_forecast_backtest(results, summary, cfg, {"data": str(data), "horizon_days": cfg.horizon_days,
                                                        "max_rounds": rounds, "draws": draws})
    if as_json:
        print(json.dumps({"summary": summary.to_dict("records"), "cutoffs": results.to_dict("records")}, default=str))
        return
    print_backtest(summary)
    console.print("MdAPE is over the cut-offs whose actual is not 0 (n); MdAE is the median absolute error in points of "
                  "starting ARR over every cut-off; bias is the median signed % error and the cut-offs above the actual. "
                  "'live' is what the forecast would have served, choosing its method on earlier cut-offs only; the "
                  "record is stored for the live forecast's choice.", highlight=False)
    console.print(f"logged to MLflow as run {run} (plot: plots/forecast_backtest.png)")


def _track(source, cfg, uri: str, as_of: dt.date, as_json: bool) -> None:  # noqa: ANN001
    from serving.forecast_store import ForecastStore

    stored = ForecastStore(uri).read()
    data_end = _data_end(source, as_of)
    out = _past_against_actual(source, cfg, stored, data_end)
    if as_json:
        print(json.dumps(out.to_dict("records"), default=str))
        return
    if out.empty:
        console.print(f"no stored {cfg.horizon_days}-day forecast has a horizon that ended by {data_end} "
                      f"({len(stored)} stored row(s))")
        return
    t = Table(title=f"past forecasts against what happened (data to {data_end})")
    for col in ("as of", "group", "measure", "forecast", "actual", "error %", "80% held", "95% held"):
        t.add_column(col)
    for r in out.to_dict("records"):
        t.add_row(str(r["as_of"]), r["group_name"], r["measure"], f"{r['forecast']:,.1f}", f"{r['actual']:,.1f}",
                  f"{r['error_pct']:+.1f}", "yes" if r["in80"] else "no", "yes" if r["in95"] else "no")
    console.print(t)


def _data_end(source, as_of: dt.date) -> dt.date:  # noqa: ANN001
    """``as_of``, or the data's last day when that is earlier: outcomes are known up to there."""
    from features.build import default_data_end, tables_from_backend

    return min(as_of, default_data_end(tables_from_backend(source.ibis(), source.present)))


def _past_against_actual(source, cfg, stored: pd.DataFrame, data_end: dt.date,  # noqa: ANN001
                         newest: int | None = None) -> pd.DataFrame:
    """Stored forecasts of this horizon whose horizon has passed by ``data_end`` (``_data_end``; the ``newest``
    cut-offs of them when given), beside what happened (``track``)."""
    from serving.forecast_store import track
    from training.forecast_job import actuals_at

    if not stored.empty:
        stored = stored.loc[stored["horizon_days"].astype(int) == cfg.horizon_days]
    if stored.empty:
        return track(stored, pd.DataFrame(), data_end)
    due = sorted({d for d in pd.to_datetime(stored["as_of"]).dt.date if d + dt.timedelta(days=cfg.horizon_days) <= data_end})
    due = due[-newest:] if newest else due
    stored = stored.loc[pd.to_datetime(stored["as_of"]).dt.date.isin(due)]
    return track(stored, actuals_at(source, due, cfg), data_end)


def register(app: typer.Typer) -> None:
    app.command("forecast")(forecast)
