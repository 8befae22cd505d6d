"""Training commands: ``train``, ``retrain``, ``models``, ``promote`` and ``rollback``."""

from __future__ import annotations

import datetime as dt
import json
import re
from enum import Enum
from typing import Annotated

import typer
from rich.table import Table

from serving.cli.common import (
    EXIT_KEPT,
    EXIT_REGISTRY,
    RebuildSnapshots,
    checked,
    console,
    fail,
    open_source,
    parse_date,
    say,
    settings,
)
from training.names import ModelName

SHOWN = ("roc_auc", "pr_auc", "lift_top_decile", "precision_top_book", "brier", "ece")


class Format(str, Enum):
    table = "table"
    json = "json"


def _quiet_mlflow() -> None:
    """Keep MLflow's progress chatter out of the command's output (errors still show)."""
    import logging

    logging.getLogger("mlflow").setLevel(logging.ERROR)


def _read_frame(location: str, as_of: dt.date | None = None):  # noqa: ANN202 - pandas imported lazily
    """The feature frame at ``location`` (file, partitioned folder or lake URI); exit 2 naming it when it cannot be read."""
    from training.pipeline import read_feature_frame

    try:
        return read_feature_frame(location, settings(), as_of)
    except ValueError as exc:
        fail(str(exc))


def _registry_errors() -> tuple[type[Exception], ...]:
    """What the MLflow client raises when the registry cannot be reached or refuses: exit 3, not a traceback."""
    from mlflow.exceptions import MlflowException
    from requests.exceptions import RequestException

    return MlflowException, RequestException


def _registry_or_exit() -> None:
    """Exit 3 when the SQLite registry file is gone while this home has deployed models.

    Training would create an empty registry there and promote against no champion: a
    registry moved away is restored (or ``MLFLOW_TRACKING_URI`` fixed), never replaced.
    A home that never deployed gets its registry on first training.
    """
    from serving.scoring.models import read_deployment
    from training.registry import RegistryMissing, require_registry

    cfg = settings()
    try:
        require_registry(cfg)
    except RegistryMissing as exc:
        if read_deployment(cfg):
            fail(f"{exc}, though this home has deployed models; restore it or point MLFLOW_TRACKING_URI at it",
                 EXIT_REGISTRY)


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
    features: Annotated[str, typer.Option("--features", help="Feature frame from `expansion features`: a Parquet or CSV file, a folder partitioned by as_of, or a lake URI (s3a://, gs://, abfss://, file://).")],
    rounds: Annotated[int, typer.Option("--rounds", min=1, help="Most boosting rounds (the backtest picks the count).")] = 500,
    cutoffs: Annotated[int | None, typer.Option("--cutoffs", min=3, help="Use only the newest N cut-offs (default: every labelled month).")] = None,
) -> None:
    """Backtest both models over every labelled month, refit them on all of it, log to MLflow, register and gate them."""
    from training.pipeline import train_and_register

    frame = _read_frame(features)
    _quiet_mlflow()
    _registry_or_exit()
    try:
        registered = train_and_register(frame, settings(), n_cutoffs=cutoffs, num_boost_round=rounds)
    except ValueError as exc:
        fail(str(exc))
    _print_registered(registered)


def retrain(
    data: Annotated[str | None, typer.Option("--data", help="Folder with the canonical tables (a local path or file:// URI).")] = None,
    features: Annotated[str | None, typer.Option("--features", help="Instead of --data: a feature frame built elsewhere (a file, a folder partitioned by as_of, or a lake URI).")] = None,
    as_of: Annotated[str | None, typer.Option("--as-of", help="Data is complete up to this date (default: the data end, its last complete usage_daily day).")] = None,
    rounds: Annotated[int, typer.Option("--rounds", min=1, help="Most boosting rounds (the backtest picks the count).")] = 500,
    cutoffs: Annotated[int | None, typer.Option("--cutoffs", min=3, help="Use only the newest N cut-offs (default: every labelled month).")] = None,
    deploy: Annotated[bool, typer.Option("--deploy", help="When a model is promoted: copy the champions into the BentoML store and publish the newest snapshot for the service.")] = False,
    rebuild_snapshots: RebuildSnapshots = False,
) -> None:
    """The monthly job: validate, features up to the newest complete month, backtest, refit, gate, promote, report drift.

    Exit codes: 0 a new champion (deployed with --deploy); 4 the gate kept the current
    models (reasons printed); 2 bad data (every violation listed, nothing trained);
    3 the registry cannot be reached; 1 an unexpected error.
    """
    from features.io import DataError
    from training.pipeline import retrain as run
    from training.pipeline import retrain_on_frame

    _quiet_mlflow()
    if (data is None) == (features is None):
        fail("give either --data (the canonical tables) or --features (a built feature frame)")
    _registry_or_exit()
    if features is not None:
        cut = parse_date(as_of, default_today=False)
        frame = _read_frame(features, cut)
        console.print(f"retrain: {len(frame):,} rows, snapshots {frame['as_of'].min():%Y-%m-%d} .. "
                      f"{frame['as_of'].max():%Y-%m-%d} from {features}"
                      + (f"; labels whose {settings().horizon_days}-day horizon ends after {cut} dropped" if cut else ""))
        try:
            result = retrain_on_frame(frame, settings(), cut, n_cutoffs=cutoffs, num_boost_round=rounds)
        except ValueError as exc:
            fail(str(exc))
        except _registry_errors() as exc:
            fail(f"MLflow registry: {str(exc).splitlines()[0] if str(exc) else type(exc).__name__}", EXIT_REGISTRY)
    else:
        source = open_source(data)
        as_of_date = checked(source, as_of, command="retrain")
        from serving.jobs.monitor import monitor_after_retrain, shadow_records_for

        try:
            shadows = shadow_records_for(source, settings(), as_of_date, say=say)
            result = run(source, as_of_date, settings(rebuild_snapshots), n_cutoffs=cutoffs, num_boost_round=rounds, on_step=console.print,
                         shadows=shadows)
            monitor_after_retrain(source, settings(), as_of_date, say=say)
        except (DataError, ValueError) as exc:
            fail(str(exc))
        except _registry_errors() as exc:
            fail(f"MLflow registry: {str(exc).splitlines()[0] if str(exc) else type(exc).__name__}", EXIT_REGISTRY)
        finally:
            source.close()
    _print_registered(result.registered)
    _print_drift(result)
    promoted = [name for name, r in result.registered.items() if r.decision.promote]
    for name, r in result.registered.items():
        if not r.decision.promote:
            console.print(f"kept the current {name} model: v{r.version} was not promoted: {'; '.join(r.decision.reasons)}")
    if not promoted:
        console.print("no new champion: what serves keeps serving" + ("; nothing deployed" if deploy else ""))
        raise typer.Exit(EXIT_KEPT)
    console.print(f"promoted: {', '.join(f'{n} v{result.registered[n].version}' for n in promoted)}")
    if deploy:
        _deploy_after_retrain(result)


def _print_drift(result) -> None:  # noqa: ANN001 - training.pipeline.RetrainResult
    drift = result.drift
    shifted = drift[drift["level"] != "stable"]
    if "reported" in drift.columns:  # weighted by the expansion model's importance, calendar features exempt
        reported = drift[drift["reported"]]
        console.print(f"drift vs newest snapshot {result.newest_snapshot}: {len(reported)} feature(s) shifted enough to "
                      f"move the expansion model's predictions ({len(shifted)} of {len(drift)} moved, PSI >= 0.1; "
                      "calendar features exempt)")
        if len(reported):
            report = Table(title="feature drift that moved predictions (PSI x importance share)")
            for col in ("feature", "psi", "importance share", "weighted"):
                report.add_column(col)
            for row in reported.head(10).itertuples():
                report.add_row(row.feature, f"{row.psi:.3f}", f"{row.importance_share:.1%}", f"{row.weighted_psi:.3f}")
            console.print(report)
        return
    console.print(f"drift vs newest snapshot {result.newest_snapshot}: "
                  f"{len(shifted)} of {len(drift)} features moved (PSI >= 0.1)")
    report = Table(title="largest feature drift (PSI)")
    for col in ("feature", "psi", "level"):
        report.add_column(col)
    for row in drift.head(10).itertuples():
        report.add_row(row.feature, f"{row.psi:.3f}", row.level)
    console.print(report)


def _deploy_after_retrain(result) -> None:  # noqa: ANN001 - training.pipeline.RetrainResult
    """Champions into the BentoML store, then the newest snapshot for the service (what ``deploy --features`` does)."""
    from serving.api.deployment import publish_snapshot
    from serving.scoring.models import deploy_champions, store_folder

    cfg = settings()
    for name, model in deploy_champions(cfg).items():
        if model is None:
            console.print(f"no champion for {name}: the service uses the baseline for it")
            continue
        console.print(f"deployed {name} v{model.version} (run {model.run_id}) into {store_folder(cfg) or 'the BENTOML_HOME store'}")
    path = publish_snapshot(result.frame, cfg)
    console.print(f"published feature snapshot {path} as of {result.newest_snapshot}")


def models(
    fmt: Annotated[Format, typer.Option("--format", help="table or json.")] = Format.table,
) -> None:
    """List registered versions: aliases, pooled backtest ROC-AUC with its interval and positives, the gate's decision and why."""
    from training.registry import RegistryError, list_versions

    _quiet_mlflow()
    try:
        versions = list_versions(settings())
    except RegistryError as exc:
        fail(str(exc), EXIT_REGISTRY)
    if fmt is Format.json:
        print(json.dumps(versions, indent=2))
        return
    table = Table(title="registered models: pooled out-of-time ROC-AUC and gain with the intervals the gate decided on "
                  "(Settings.promotion_confidence), baseline on the same rows")
    for col in ("model", "ver", "aliases", "auc", "base", "gain over baseline", "positives", "ece", "gate"):
        table.add_column(col, justify="left" if col in ("model", "aliases", "gate") else "right")
    for v in versions:
        m, b = v["metrics"], v["baseline_metrics"]
        auc = v["gate_roc_auc"] or f"{m.get('roc_auc', float('nan')):.3f}"
        table.add_row(v["name"], v["version"], ",".join(v["aliases"]) or "-", _bare(auc),
                      f"{b.get('roc_auc', float('nan')):.3f}", _bare(v["gate_gain_over_baseline"] or "-"),
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
    except _registry_errors() as exc:
        fail(f"MLflow registry: {str(exc).splitlines()[0] if str(exc) else type(exc).__name__}", EXIT_REGISTRY)
    console.print(f"{model.value}: champion is now v{version} (was {('v' + previous) if previous else 'none'})")


def rollback(
    model: Annotated[ModelName, typer.Option("--model", help="expansion or churn.")],
    to_version: Annotated[str | None, typer.Option("--to-version", help="Default: the champion it replaced.")] = None,
) -> None:
    """Move the champion alias back to the previous champion (or to --to-version), and say where that takes effect."""
    from serving.api.deployment import RollbackPlan
    from serving.scoring.models import load_from_store, read_deployment, store_folder
    from training.registry import RegistryError, public_uri
    from training.registry import rollback as do_rollback

    cfg = settings()
    try:
        old, new = do_rollback(model.value, cfg, to_version)
    except RegistryError as exc:
        fail(str(exc), EXIT_REGISTRY)
    except _registry_errors() as exc:
        fail(f"MLflow registry: {str(exc).splitlines()[0] if str(exc) else type(exc).__name__}", EXIT_REGISTRY)
    tag = (read_deployment(cfg) or {}).get(model.value)
    stored = load_from_store(model.value, store_folder(cfg), tag) if tag else None
    plan = RollbackPlan(model.value, old, new, public_uri(cfg.tracking_uri), None if stored is None else str(stored.version),
                        cfg.refresh_seconds)
    console.print(f"{model.value}: champion rolled back from v{old} to v{new}")
    for line in plan.lines():
        console.print(f"  {line}", highlight=False)


def register(app: typer.Typer) -> None:
    app.command("train")(train)
    app.command("retrain")(retrain)
    app.command("models")(models)
    app.command("promote")(promote)
    app.command("rollback")(rollback)


def _bare(span: str) -> str:
    """'0.740 (98% interval 0.690 to 0.790)' -> '0.740 (0.690 to 0.790)' for a narrow table cell."""
    return re.sub(r"\d+% interval ", "", span)
