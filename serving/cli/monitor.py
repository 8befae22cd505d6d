"""``expansion monitor``: every past score run whose horizon passed, checked against what happened."""

from __future__ import annotations

from typing import Annotated

import typer
from rich.table import Table

from serving.cli.common import console, err_console, job_errors, open_source, parse_date, say, settings

SHOWN = ("roc_auc", "lift_top_decile", "precision_top_book", "ece")


def monitor(
    data: Annotated[str, typer.Option("--data", help="Folder with the canonical tables (what happened after each run).")],
    as_of: Annotated[str | None, typer.Option("--as-of", help="Data end (default: the data end, its last complete usage_daily day).")] = None,
    no_mlflow: Annotated[bool, typer.Option("--no-mlflow", help="Store and show the record without logging MLflow runs.")] = False,
    sink: Annotated[str | None, typer.Option("--sink", help="The SQL database holding the score history and the record (sqlite:///PATH or postgresql://...; default: the product store, EXPANSION_STORE_URI).")] = None,
) -> None:
    """Measure champion, shadow and rule-based baseline of both models (expansion, churn) on every scored month
    whose 90-day outcome is known.

    Stores the track record beside the score history, logs one MLflow run per scored month, and sends
    alarms (realised lift below the baseline's, calibration drift) through the alert channels.
    """
    from serving.jobs import monitor_job

    cfg = settings()
    day = parse_date(as_of, default_today=False)
    source = open_source(data)
    try:
        with job_errors():
            run = monitor_job(source, cfg, day, sink=sink, log_mlflow=not no_mlflow, say=say)
    finally:
        source.close()
    _print(run.result)
    for alarm in run.result.alarms:
        state = ("sent" if alarm.key in run.sent else "already sent" if not any(alarm.kind in p for p in run.problems)
                 else "NOT sent")
        console.print(f"[red]alarm[/red] ({state}): {alarm.message}", highlight=False)
    for problem in run.problems:
        err_console.print(f"monitor: {problem}", highlight=False)


def _print(result) -> None:  # noqa: ANN001 - serving.jobs.monitoring.MonitorResult
    from serving.jobs.monitoring import WATCHED

    track = result.track[result.track["segment"] == "(all)"] if len(result.track) else result.track
    for name, model in WATCHED.items():
        mine = track[track["model_name"] == name] if len(track) else track
        if len(mine):
            console.print(_table(name, f"{model.label} accounts", mine))
    if result.waiting:
        console.print(f"waiting for their horizon: {', '.join(result.waiting)}")


def _table(name: str, positives: str, track) -> Table:  # noqa: ANN001 - one model's overall track rows
    table = Table(title=f"{name}: realised performance per scored month (90% interval, account-level bootstrap)")
    for col in ("month", "accounts", positives, "metric", "champion", "shadow", "baseline", "champion - baseline"):
        table.add_column(col, justify="left" if col in ("month", "metric") else "right")
    for month, part in track.groupby("month", sort=True):
        by = part.set_index(["scorer", "metric"])
        for metric in SHOWN:
            cells = []
            for scorer in ("champion", "shadow", "baseline", "champion - baseline"):
                cells.append(f"{by.at[(scorer, metric), 'value']:.3f} [{by.at[(scorer, metric), 'low']:.3f}, "
                             f"{by.at[(scorer, metric), 'high']:.3f}]" if (scorer, metric) in by.index else "-")
            first = part[part["metric"] == "roc_auc"].iloc[0]
            table.add_row(month, f"{int(first['rows'])}", f"{int(first['positives'])}", metric, *cells)
    return table


def register(app: typer.Typer) -> None:
    app.command("monitor")(monitor)
