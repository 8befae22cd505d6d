"""Training commands: ``train``, ``retrain``, ``models``, ``promote`` and ``rollback``."""

from __future__ import annotations

import json
from enum import Enum
from pathlib import Path
from typing import Annotated

import typer
from rich.table import Table

from serving.cli.common import EXIT_REGISTRY, console, fail, parse_date, settings
from training.names import ModelName

SHOWN = ("roc_auc", "pr_auc", "lift_top_decile", "precision_top_book", "brier", "ece")


class Format(str, Enum):
    table = "table"
    json = "json"


def _quiet_mlflow() -> None:
    """Keep MLflow's progress chatter out of the command's output (errors still show)."""
    import logging

    logging.getLogger("mlflow").setLevel(logging.ERROR)


def _read_frame(path: Path):  # noqa: ANN202 - pandas imported lazily
    import pandas as pd

    if not path.is_file():
        fail(f"feature file {path} does not exist")
    if path.suffix == ".csv":
        frame = pd.read_csv(path)
        frame["as_of"] = pd.to_datetime(frame["as_of"])
        return frame
    return pd.read_parquet(path)


def _span(table, scorer: str, metric: str) -> str:  # noqa: ANN001 - a training.bootstrap.compare frame
    row = table[(table["scorer"] == scorer) & (table["metric"] == metric)].iloc[0]
    return f"{row['value']:.3f} [{row['low']:.3f}, {row['high']:.3f}]"


def _print_registered(registered: dict) -> None:
    """The pooled comparison of each registered challenger with the baseline, and the gate's decisions."""
    table = Table(title="pooled out-of-time backtest: model vs rule-based baseline, same rows (90% interval)")
    table.add_column("metric")
    for name, r in registered.items():
        table.add_column(f"{name} v{r.version}", justify="right")
        table.add_column("baseline", justify="right")
        table.add_column("gain", justify="right")
    for key in SHOWN:
        cells = []
        for r in registered.values():
            cells += [_span(r.result.comparison, who, key) for who in ("model", "baseline", "model - baseline")]
        table.add_row(key, *cells)
    console.print(table)
    for name, r in registered.items():
        window = r.result.model.training_window
        console.print(f"[bold]{name}[/bold]: {len(r.result.folds)} cut-offs {window['test_start']}..{window['test_end']}, "
                      f"{r.result.positives} positives in {len(r.result.pooled):,} test rows; shipped model refit on "
                      f"{window['train_start']}..{window['train_end']} with {r.result.rounds} rounds")
        if r.result.warning:
            console.print(f"[yellow]warning:[/yellow] {r.result.warning}")
        console.print(f"  gate: {r.decision.label}: {'; '.join(r.decision.reasons)}")


def train(
    features: Annotated[Path, typer.Option("--features", help="Feature frame (Parquet or CSV) from `build_features`.")],
    rounds: Annotated[int, typer.Option("--rounds", min=1, help="Most boosting rounds (the backtest picks the count).")] = 500,
    cutoffs: Annotated[int | None, typer.Option("--cutoffs", min=3, help="Use only the newest N cut-offs (default: every labelled month).")] = None,
) -> None:
    """Backtest both models over every labelled month, refit them on all of it, log to MLflow, register and gate them."""
    from training.pipeline import train_and_register

    frame = _read_frame(features)
    _quiet_mlflow()
    try:
        registered = train_and_register(frame, settings(), n_cutoffs=cutoffs, num_boost_round=rounds)
    except ValueError as exc:
        fail(str(exc))
    _print_registered(registered)


def retrain(
    data: Annotated[Path, typer.Option("--data", help="Folder with the canonical tables.")],
    as_of: Annotated[str | None, typer.Option("--as-of", help="Data is complete up to this date (default: newest usage day).")] = None,
    rounds: Annotated[int, typer.Option("--rounds", min=1, help="Most boosting rounds (the backtest picks the count).")] = 500,
    cutoffs: Annotated[int | None, typer.Option("--cutoffs", min=3, help="Use only the newest N cut-offs (default: every labelled month).")] = None,
) -> None:
    """The monthly job: features up to the newest complete month, backtest, refit, gate, promote, report drift."""
    from features.io import DataError, open_data
    from training.pipeline import retrain as run

    _quiet_mlflow()
    try:
        source = open_data(data)
        result = run(source, parse_date(as_of, default_today=False), settings(), n_cutoffs=cutoffs,
                     num_boost_round=rounds, on_step=console.print)
    except (DataError, ValueError) as exc:
        fail(str(exc))
    _print_registered(result.registered)
    drift = result.drift
    shifted = drift[drift["level"] != "stable"]
    console.print(f"drift vs newest snapshot {result.newest_snapshot}: "
                  f"{len(shifted)} of {len(drift)} features moved (PSI >= 0.1)")
    report = Table(title="largest feature drift (PSI)")
    for col in ("feature", "psi", "level"):
        report.add_column(col)
    for row in drift.head(10).itertuples():
        report.add_row(row.feature, f"{row.psi:.3f}", row.level)
    console.print(report)


def models(
    fmt: Annotated[Format, typer.Option("--format", help="table or json.")] = Format.table,
) -> None:
    """List registered versions: aliases, pooled backtest ROC-AUC with its interval and positives, the gate's decision and why."""
    from training.registry import list_versions

    _quiet_mlflow()
    versions = list_versions(settings())
    if fmt is Format.json:
        print(json.dumps(versions, indent=2))
        return
    table = Table(title="registered models: pooled out-of-time ROC-AUC (90% interval), baseline on the same rows")
    for col in ("model", "ver", "aliases", "auc", "base", "gain over baseline", "positives", "ece", "gate"):
        table.add_column(col, justify="left" if col in ("model", "aliases", "gate") else "right")
    for v in versions:
        m, b = v["metrics"], v["baseline_metrics"]
        auc = v["gate_roc_auc"] or f"{m.get('roc_auc', float('nan')):.3f}"
        table.add_row(v["name"], v["version"], ",".join(v["aliases"]) or "-", auc.replace("90% interval ", ""),
                      f"{b.get('roc_auc', float('nan')):.3f}", (v["gate_gain_over_baseline"] or "-").replace("90% interval ", ""),
                      v["gate_positives"] or "-", f"{m.get('ece', float('nan')):.3f}", v["gate"] or "-")
    console.print(table)
    for v in versions:
        if v["gate_reasons"]:
            console.print(f"{v['name']} v{v['version']}: {v['gate_reasons']}")


def promote(
    model: Annotated[ModelName, typer.Option("--model", help="expansion or churn.")],
    version: Annotated[str, typer.Option("--version", help="Version to make champion.")],
) -> None:
    """Manual override: make a version the champion."""
    from training.registry import RegistryError
    from training.registry import promote as do_promote

    try:
        previous = do_promote(model.value, version, settings())
    except RegistryError as exc:
        fail(str(exc), EXIT_REGISTRY)
    console.print(f"{model.value}: champion is now v{version} (was {('v' + previous) if previous else 'none'})")


def rollback(
    model: Annotated[ModelName, typer.Option("--model", help="expansion or churn.")],
    to_version: Annotated[str | None, typer.Option("--to-version", help="Default: the champion it replaced.")] = None,
) -> None:
    """Move the champion alias back to the previous champion (or to --to-version)."""
    from training.registry import RegistryError
    from training.registry import rollback as do_rollback

    try:
        old, new = do_rollback(model.value, settings(), to_version)
    except RegistryError as exc:
        fail(str(exc), EXIT_REGISTRY)
    console.print(f"{model.value}: champion rolled back from v{old} to v{new}")


def register(app: typer.Typer) -> None:
    app.command("train")(train)
    app.command("retrain")(retrain)
    app.command("models")(models)
    app.command("promote")(promote)
    app.command("rollback")(rollback)
