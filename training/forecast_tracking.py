"""The forecast's MLflow edge: a backtest run with its table and a plot of forecast, interval and actual by cut-off."""

from __future__ import annotations

import tempfile
from pathlib import Path

import mlflow
import numpy as np
import pandas as pd
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

from features.config import Settings
from training.forecast_job import ForecastResult
from training.registry import tracking


def backtest_figure(results: pd.DataFrame, groups: list[str] | None = None) -> Figure:
    """Expansion ARR by cut-off, one panel per group: the model's forecast with its 80 % and 95 % bands, both naive
    forecasts, what the live choice served, and the actual."""
    groups = groups or list(dict.fromkeys(results["group"]))
    fig = Figure(figsize=(6.0, 2.6 * len(groups)), dpi=100)
    FigureCanvasAgg(fig)
    for i, g in enumerate(groups):
        ax = fig.add_subplot(len(groups), 1, i + 1)
        part = results.loc[results["group"] == g]
        model = part.loc[part["method"] == "model"].sort_values("cutoff")
        x = pd.to_datetime(model["cutoff"])
        ax.fill_between(x, model["expansion_low95"], model["expansion_high95"], alpha=0.15, label="95 %")
        ax.fill_between(x, model["expansion_low80"], model["expansion_high80"], alpha=0.3, label="80 %")
        ax.plot(x, model["expansion_forecast"], marker="o", label="forecast")
        ax.plot(x, model["expansion_actual"], marker="s", color="black", label="actual")
        for method, style in (("naive_last", ":"), ("naive_mean4", "--"), ("live", "-.")):
            n = part.loc[part["method"] == method].sort_values("cutoff")
            ax.plot(pd.to_datetime(n["cutoff"]), n["expansion_forecast"], linestyle=style, label=method)
        ax.set_title(f"next-horizon expansion ARR: {g}", fontsize=9)
        ax.tick_params(labelsize=7)
        if i == 0:
            ax.legend(fontsize=6, ncol=3)
    fig.tight_layout()
    return fig


def log_forecast_backtest(results: pd.DataFrame, summary: pd.DataFrame, settings: Settings,
                          params: dict[str, object]) -> str:
    """One MLflow run: params, per group and method MdAPE / NRR error / coverage, the tables and the plot."""
    with tracking(settings) as experiment, mlflow.start_run(experiment_id=experiment, run_name="forecast-backtest") as run:
        mlflow.log_params(params)
        for r in summary.to_dict("records"):
            for key in ("expansion_mdape_pct", "mdape_cutoffs", "zero_actual_cutoffs", "expansion_mdae_pts",
                        "expansion_bias_pct", "expansion_above", "cutoffs", "nrr_mae_pts", "expansion_in80_pct",
                        "expansion_in95_pct", "nrr_in80_pct", "nrr_in95_pct"):
                value = r.get(key)
                if value is not None and np.isfinite(value):
                    mlflow.log_metric(f"{r['window']}_{r['method']}_{r['group']}_{key}", float(value))
        mlflow.log_text(results.to_csv(index=False), "tables/forecast_backtest_cutoffs.csv")
        mlflow.log_text(summary.to_csv(index=False), "tables/forecast_backtest_summary.csv")
        with tempfile.TemporaryDirectory() as tmp:
            path = Path(tmp) / "forecast_backtest.png"
            backtest_figure(results).savefig(path)
            mlflow.log_artifact(str(path), "plots")
        return run.info.run_id


def log_forecast(result: ForecastResult, settings: Settings) -> str:
    """One MLflow run per stored forecast: its figures per group and the models it used."""
    with tracking(settings) as experiment, mlflow.start_run(experiment_id=experiment, run_name="forecast") as run:
        mlflow.log_params({"as_of": result.as_of.isoformat(), "horizon_days": result.horizon_days,
                           "forecast_run_id": result.run_id, **{f"model_{k}": v for k, v in result.models.items()}})
        for r in result.table.to_dict("records"):
            for key, value in r.items():
                if key not in ("group", "accounts") and isinstance(value, float) and np.isfinite(value):
                    mlflow.log_metric(f"{r['group']}_{key}", value)
        mlflow.log_text(result.table.to_csv(index=False), "tables/forecast.csv")
        return run.info.run_id
