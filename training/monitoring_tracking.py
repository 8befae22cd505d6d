"""MLflow and registry edges of the track record: monitoring runs, the shadow alias, the backtest's promise.

- :func:`log_monitoring`: one MLflow run per scored month and model (``monitor-<model>-<month>``, both
  the expansion and the churn model) with every realised figure and its interval, plus the trend plot of
  that model's whole record;
- the ``shadow`` alias: a version the gate did not promote, scored beside the champion on
  every run (:func:`shadow_model`). It keeps the alias until its realised months held enough
  positives to be judged (``training.gate.shadow_spent``) or it is promoted; only then may a
  newer rejected version take its place (:func:`update_shadow`), so a record can build up;
- :func:`promises`: what each version's pooled backtest promised, to draw beside what happened.
"""

from __future__ import annotations

import io

import mlflow
import numpy as np
import pandas as pd
from mlflow.exceptions import MlflowException

from features.config import Settings
from training.models import TrainedModel
from training.monitoring import ALL
from training.registry import CHAMPION, configure, list_versions, load_version, tracking

SHADOW = "shadow"


def shadow_version(name: str, settings: Settings) -> str | None:
    """The version holding the ``shadow`` alias, unless it is also the champion."""
    client = configure(settings)
    try:
        version = str(client.get_model_version_by_alias(name, SHADOW).version)
    except MlflowException:
        return None
    try:
        champion = str(client.get_model_version_by_alias(name, CHAMPION).version)
    except MlflowException:
        champion = None
    return None if version == champion else version


def shadow_model(name: str, settings: Settings) -> TrainedModel | None:
    """The shadow version's model, or None."""
    version = shadow_version(name, settings)
    return None if version is None else load_version(name, version, settings)


def update_shadow(name: str, new_version: str, promoted: bool, spent: bool, settings: Settings) -> str | None:
    """Move the ``shadow`` alias after a gate decision; returns the version in shadow afterwards.

    A promotion clears the shadow (it serves, or the refit that beat it does); a rejected
    version becomes the shadow when there is none, or when the current one has been judged
    on enough realised positives (``spent``).
    """
    client = configure(settings)
    current = shadow_version(name, settings)
    if promoted:
        if current is not None or _has_alias(client, name):
            client.delete_registered_model_alias(name, SHADOW)
        return None
    if current is None or spent:
        client.set_registered_model_alias(name, SHADOW, new_version)
        return new_version
    return current


def _has_alias(client, name: str) -> bool:  # noqa: ANN001 - MlflowClient
    try:
        client.get_model_version_by_alias(name, SHADOW)
        return True
    except MlflowException:
        return False


def promises(settings: Settings, name: str = "expansion") -> dict[str, dict[str, float]]:
    """Per registered version: its pooled backtest's metrics (``roc_auc``, ``roc_auc_low``, ..., ``positives``);
    the champion's also carry ``calibration_month_sd`` from its bundle (the calibration band's month spread)."""
    found = {v["version"]: dict(v["metrics"]) for v in list_versions(settings, (name,)) if v["name"] == name}
    for v in list_versions(settings, (name,)):
        if v["name"] == name and CHAMPION in v.get("aliases", []):
            bundle = load_version(name, v["version"], settings)
            if "calibration_month_sd" in bundle.metrics:
                found[v["version"]]["calibration_month_sd"] = float(bundle.metrics["calibration_month_sd"])
    return found


def log_monitoring(track: pd.DataFrame, settings: Settings, history: pd.DataFrame | None = None) -> list[str]:
    """One MLflow run per (model, month) of ``track``; the model's trend plot of ``history`` (default: ``track``) on each."""
    run_ids = []
    whole = track if history is None else history
    plots = {name: trend_png(whole[whole["model_name"] == name]) for name in track["model_name"].unique()}
    for (name, month), part in track.groupby(["model_name", "month"], sort=True):
        plot = plots[name]
        with tracking(settings) as experiment, mlflow.start_run(experiment_id=experiment,
                                                                run_name=f"monitor-{name}-{month}") as run:
            overall = part[part["segment"] == ALL]
            plain = overall[~overall["scorer"].str.contains(" - ")].dropna(subset=["version"])
            versions = plain.drop_duplicates("scorer").set_index("scorer")["version"]
            mlflow.log_params({"kind": "monitoring", "model": name, "scored_month": month,
                               **{f"{k.replace(' ', '_')}_version": str(v) for k, v in versions.items()}})
            figures = {}
            for r in overall.itertuples():
                key = f"{r.scorer.replace(' - ', '_minus_').replace(' ', '_')}_{r.metric}"
                for suffix, value in (("", r.value), ("_low", r.low), ("_high", r.high)):
                    if value is not None and np.isfinite(value):
                        figures[f"{key}{suffix}"] = float(value)
            first = overall[overall["metric"] == "roc_auc"]
            if len(first):
                figures["positives"], figures["rows"] = float(first["positives"].iloc[0]), float(first["rows"].iloc[0])
            mlflow.log_metrics(figures)
            mlflow.log_text(part.to_csv(index=False), "tables/realised.csv")
            if plot is not None:
                mlflow.log_image(plot, "plots/trend.png")
            run_ids.append(run.info.run_id)
    return run_ids


def trend_png(track: pd.DataFrame):  # noqa: ANN201 - numpy image (H, W, 4) or None
    """Realised ROC-AUC per month of one model's record: champion, baseline and shadow with their intervals, and the
    backtest's promise."""
    from matplotlib.figure import Figure

    rows = track[(track["segment"] == ALL) & (track["metric"] == "roc_auc")]
    if not len(rows):
        return None
    fig = Figure(figsize=(6.4, 3.0), dpi=80)
    ax = fig.add_subplot()
    for scorer, colour in (("champion", "#2563eb"), ("baseline", "#6b7280"), ("shadow", "#d97706"),
                           ("backtest promise", "#16a34a")):
        part = rows[rows["scorer"] == scorer].sort_values("month")
        if len(part):
            below = (part["value"] - part["low"]).fillna(0).clip(lower=0)
            above = (part["high"] - part["value"]).fillna(0).clip(lower=0)
            ax.errorbar(part["month"], part["value"], yerr=[below, above],
                        marker="o", capsize=3, label=scorer, color=colour, linestyle="-" if scorer != "backtest promise" else "--")
    ax.axhline(0.5, color="#9ca3af", linewidth=0.8, linestyle=":")
    ax.set_ylabel("realised ROC-AUC (90% interval)")
    ax.legend(frameon=False, fontsize=8)
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", bbox_inches="tight")
    buffer.seek(0)
    import matplotlib.image

    return matplotlib.image.imread(buffer)
