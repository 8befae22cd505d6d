"""Training commands: ``train``, ``retrain``, ``models``, ``promote`` and ``rollback``."""

from __future__ import annotations

import json
from enum import Enum
from pathlib import Path
from typing import Annotated

import typer
from rich.table import Table

from serving.cli_common import EXIT_INVALID_DATA, console, err_console, parse_date, settings

SHOWN = ("roc_auc", "pr_auc", "lift_top_decile", "precision_at_k", "brier", "ece")
EXIT_REGISTRY = 3


class ModelName(str, Enum):
    expansion = "expansion"
    churn = "churn"


class Format(str, Enum):
    table = "table"
    json = "json"


def _quiet_mlflow() -> None:
    """Keep MLflow's progress chatter out of the command's output (errors still show)."""
    import logging

    logging.getLogger("mlflow").setLevel(logging.ERROR)


def _fail(message: str, code: int = EXIT_INVALID_DATA) -> None:
    err_console.print(f"[red]error:[/red] {message}")
    raise typer.Exit(code)


def _read_frame(path: Path):  # noqa: ANN202 - pandas imported lazily
    import pandas as pd

    if not path.is_file():
        _fail(f"feature file {path} does not exist")
    if path.suffix == ".csv":
        frame = pd.read_csv(path)
        frame["as_of"] = pd.to_datetime(frame["as_of"])
        return frame
    return pd.read_parquet(path)


def _train_and_gate(frame, cfg, rounds: int, cutoffs: int) -> dict:  # noqa: ANN001
    """Train both models, register and gate them; print the comparison; return the results."""
    from training.pipeline import train_and_register

    _quiet_mlflow()
    try:
        registered = train_and_register(frame, cfg, n_cutoffs=cutoffs, num_boost_round=rounds)
    except ValueError as exc:
        _fail(str(exc))
    table = Table(title="newest test window: model vs rule-based baseline (same rows)")
    table.add_column("metric")
    for name, r in registered.items():
        table.add_column(f"{name} v{r.version}", justify="right")
        table.add_column("baseline", justify="right")
    for key in SHOWN:
        cells = []
        for r in registered.values():
            cells += [f"{r.result.newest.test.metrics[key]:.3f}", f"{r.result.newest.baseline_test.metrics[key]:.3f}"]
        table.add_row(key, *cells)
    console.print(table)
    for name, r in registered.items():
        window = r.result.newest.split.window
        console.print(f"[bold]{name}[/bold] (test {window['test_start']}): {r.decision.label}: {'; '.join(r.decision.reasons)}")
    return {name: r.result for name, r in registered.items()}


def train(
    features: Annotated[Path, typer.Option("--features", help="Feature frame (Parquet or CSV) from `build_features`.")],
    rounds: Annotated[int, typer.Option("--rounds", min=1, help="Most boosting rounds (early stopping picks fewer).")] = 500,
    cutoffs: Annotated[int, typer.Option("--cutoffs", min=1, help="Backtest cut-offs, rolling forward.")] = 3,
) -> None:
    """Train both models on a feature frame, log to MLflow, register and gate them."""
    cfg = settings()
    _train_and_gate(_read_frame(features), cfg, rounds, cutoffs)


def retrain(
    data: Annotated[Path, typer.Option("--data", help="Folder with the canonical tables.")],
    as_of: Annotated[str | None, typer.Option("--as-of", help="Data is complete up to this date (default: newest usage day).")] = None,
    rounds: Annotated[int, typer.Option("--rounds", min=1, help="Most boosting rounds.")] = 500,
    cutoffs: Annotated[int, typer.Option("--cutoffs", min=1, help="Backtest cut-offs, rolling forward.")] = 3,
) -> None:
    """The monthly job: features up to the newest complete month, train, gate, promote, report drift."""
    from features.build import build_features
    from features.io import DataError, open_data, require_tables
    from features.registry import categorical_features, feature_names
    from training.datasets import month_ends, newest_complete_month_end, rows
    from training.drift import feature_drift

    cfg = settings()
    try:
        source = open_data(data)
        require_tables(source)
    except DataError as exc:
        _fail(str(exc))
    first, last = source.con.execute("SELECT min(date)::DATE, max(date)::DATE FROM usage_daily").fetchone()
    # Without --as-of the data is taken to be complete up to its newest usage day.
    as_of_date = parse_date(as_of, default_today=False) or last
    end = newest_complete_month_end(as_of_date)
    dates = month_ends(first, end)
    console.print(f"building features for {len(dates)} month ends {dates[0]} .. {dates[-1]}")
    frame = build_features(source, dates, cfg, data_end=as_of_date)
    results = _train_and_gate(frame, cfg, rounds, cutoffs=cutoffs)
    newest = results["expansion"].newest
    train_rows = rows(frame, newest.split.train, "expanded")
    latest = frame[frame["as_of"] == frame["as_of"].max()]
    drift = feature_drift(train_rows, latest, feature_names(), categorical_features())
    _log_drift(drift, cfg)
    shifted = drift[drift["level"] != "stable"]
    console.print(f"drift vs newest snapshot {latest['as_of'].iloc[0].date()}: "
                  f"{len(shifted)} of {len(drift)} features moved (PSI >= 0.1)")
    report = Table(title="largest feature drift (PSI)")
    for col in ("feature", "psi", "level"):
        report.add_column(col)
    for row in drift.head(10).itertuples():
        report.add_row(row.feature, f"{row.psi:.3f}", row.level)
    console.print(report)


def _log_drift(drift, cfg) -> None:  # noqa: ANN001
    """Record the drift table as its own MLflow run, next to the training runs."""
    import mlflow

    from training.registry import configure

    configure(cfg)
    with mlflow.start_run(run_name="feature-drift"):
        mlflow.log_metrics({f"psi__{r.feature}": float(r.psi) for r in drift.itertuples() if r.psi == r.psi})
        mlflow.log_text(drift.to_csv(index=False), "tables/feature_drift.csv")


def models(
    fmt: Annotated[Format, typer.Option("--format", help="table or json.")] = Format.table,
) -> None:
    """List registered versions with aliases, test-window metrics and the baseline's on the same rows."""
    from training.registry import list_versions

    _quiet_mlflow()
    versions = list_versions(settings())
    if fmt is Format.json:
        print(json.dumps(versions, indent=2))
        return
    table = Table(title="registered models: test-window metrics, baseline on the same rows")
    for col in ("model", "ver", "aliases", "auc", "base", "lift10", "base", "ece", "gate"):
        table.add_column(col, justify="left" if col in ("model", "aliases", "gate") else "right")
    for v in versions:
        m, b = v["metrics"], v["baseline_metrics"]
        pairs = ((m, "roc_auc"), (b, "roc_auc"), (m, "lift_top_decile"), (b, "lift_top_decile"), (m, "ece"))
        table.add_row(v["name"], v["version"], ",".join(v["aliases"]) or "-",
                      *(f"{d.get(k, float('nan')):.3f}" for d, k in pairs), v["gate"] or "-")
    console.print(table)


def promote(
    model: Annotated[ModelName, typer.Option("--model", help="expansion or churn.")],
    version: Annotated[str, typer.Option("--version", help="Version to make champion.")],
) -> None:
    """Manual override: make a version the champion."""
    from training.registry import RegistryError, promote as do_promote

    try:
        previous = do_promote(model.value, version, settings())
    except RegistryError as exc:
        _fail(str(exc), EXIT_REGISTRY)
    console.print(f"{model.value}: champion is now v{version} (was {('v' + previous) if previous else 'none'})")


def rollback(
    model: Annotated[ModelName, typer.Option("--model", help="expansion or churn.")],
    to_version: Annotated[str | None, typer.Option("--to-version", help="Default: the champion it replaced.")] = None,
) -> None:
    """Move the champion alias back to the previous champion (or to --to-version)."""
    from training.registry import RegistryError, rollback as do_rollback

    try:
        old, new = do_rollback(model.value, settings(), to_version)
    except RegistryError as exc:
        _fail(str(exc), EXIT_REGISTRY)
    console.print(f"{model.value}: champion rolled back from v{old} to v{new}")


def register(app: typer.Typer) -> None:
    app.command("train")(train)
    app.command("retrain")(retrain)
    app.command("models")(models)
    app.command("promote")(promote)
    app.command("rollback")(rollback)
