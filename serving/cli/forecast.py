"""``expansion forecast``: next-horizon expansion, contraction and churned ARR and NRR with intervals; its backtest and track record."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import pandas as pd
import typer
from rich.table import Table

from serving.cli.common import RebuildSnapshots, console, job_errors, open_source, parse_date, say, settings


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
    store: Annotated[str | None, typer.Option("--store", help="SQL store of forecasts (default: the product store, EXPANSION_STORE_URI).")] = None,
    rounds: Annotated[int, typer.Option("--rounds", min=1, help="Most boosting rounds in the backtest.")] = 300,
    draws: Annotated[int, typer.Option("--draws", min=100, help="Monte Carlo draws behind the intervals.")] = 2000,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON instead of a table.")] = False,
    rebuild_snapshots: RebuildSnapshots = False,
) -> None:
    """Expansion, contraction and churned ARR and NRR over the next horizon, total and per segment, with 80 % and 95 % intervals."""
    import logging

    from serving.jobs import forecast_backtest_job, forecast_job, forecast_track_job

    logging.getLogger("mlflow").setLevel(logging.ERROR)
    cfg = settings(rebuild_snapshots).model_copy(update={"horizon_days": horizon_days})
    day = parse_date(as_of, default_today=False)
    source = open_source(data)
    try:
        with job_errors():
            if backtest:
                return _print_backtest(forecast_backtest_job(source, cfg, store=store, rounds=rounds, draws=draws,
                                                             params={"data": str(data)}), as_json)
            if track:
                return _print_track(forecast_track_job(source, cfg, day, store=store, say=say), cfg.horizon_days, as_json)
            result = forecast_job(source, cfg, day, store=store, draws=draws, say=say)
    finally:
        source.close()
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


def _print_backtest(done, as_json: bool) -> None:  # noqa: ANN001 - serving.jobs.forecast.ForecastBacktest
    if as_json:
        print(json.dumps({"summary": done.summary.to_dict("records"), "cutoffs": done.results.to_dict("records")},
                         default=str))
        return
    print_backtest(done.summary)
    console.print("MdAPE is over the cut-offs whose actual is not 0 (n); MdAE is the median absolute error in points of "
                  "starting ARR over every cut-off; bias is the median signed % error and the cut-offs above the actual. "
                  "'live' is what the forecast would have served, choosing its method on earlier cut-offs only; the "
                  "record is stored for the live forecast's choice.", highlight=False)
    console.print(f"logged to MLflow as run {done.run_id} (plot: plots/forecast_backtest.png)")


def _print_track(found, horizon_days: int, as_json: bool) -> None:  # noqa: ANN001 - serving.jobs.forecast.ForecastTrack
    out = found.table
    if as_json:
        print(json.dumps(out.to_dict("records"), default=str))
        return
    if out.empty:
        console.print(f"no stored {horizon_days}-day forecast has a horizon that ended by {found.data_end} "
                      f"({found.stored_rows} stored row(s))")
        return
    t = Table(title=f"past forecasts against what happened (data to {found.data_end})")
    for col in ("as of", "group", "measure", "forecast", "actual", "error %", "80% held", "95% held"):
        t.add_column(col)
    for r in out.to_dict("records"):
        t.add_row(str(r["as_of"]), r["group_name"], r["measure"], f"{r['forecast']:,.1f}", f"{r['actual']:,.1f}",
                  f"{r['error_pct']:+.1f}", "yes" if r["in80"] else "no", "yes" if r["in95"] else "no")
    console.print(t)


def register(app: typer.Typer) -> None:
    app.command("forecast")(forecast)
