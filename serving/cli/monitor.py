"""``expansion monitor``: every past score run whose horizon passed, checked against what happened."""

from __future__ import annotations

import datetime as dt
from typing import Annotated

import typer
from rich.table import Table

from serving.cli.common import EXIT_INVALID_DATA, as_of_or_data_end, console, err_console, fail, local_path, settings

SHOWN = ("roc_auc", "lift_top_decile", "precision_top_book", "ece")


def monitor(
    data: Annotated[str, typer.Option("--data", help="Folder with the canonical tables (what happened after each run).")],
    as_of: Annotated[str | None, typer.Option("--as-of", help="Data end (default: the newest usage_daily day).")] = None,
    no_mlflow: Annotated[bool, typer.Option("--no-mlflow", help="Store and show the record without logging MLflow runs.")] = False,
    sink: Annotated[str | None, typer.Option("--sink", help="The SQL sink the score runs went to (sqlite:///PATH or postgresql://...; default: the SQLite CRM under home).")] = None,
) -> None:
    """Measure champion, shadow and rule-based baseline on every scored month whose 90-day outcome is known.

    Stores the track record beside the score history, logs one MLflow run per scored month, and sends
    alarms (realised lift below the baseline's, calibration drift) through the alert channels.
    """
    from features.io import DataError, open_data, require_tables
    from serving.monitoring_job import monitor as run_monitor
    from serving.monitoring_job import send_alarms
    from serving.monitoring_store import MonitoringStore

    cfg = settings()
    now = dt.datetime.now(dt.UTC)  # the entry point reads the clock
    try:
        source = open_data(local_path(data, "--data"))
        require_tables(source)
    except DataError as exc:
        fail(str(exc))
    from serving.sinks.sql import engine_url

    store = MonitoringStore(engine_url(sink) if sink else cfg.crm_uri)
    try:
        end = as_of_or_data_end(as_of, source, command="monitor")
        promised = _promises(cfg)
        result = run_monitor(store, source, cfg, end, now, promised)
        if len(result.track) and not no_mlflow:
            from training.monitoring_tracking import log_monitoring

            log_monitoring(result.track, cfg, store.read_track())
        sent, problems = send_alarms(result.alarms, store, cfg, now)
    except ValueError as exc:
        fail(str(exc))
    finally:
        source.close()
        store.close()
    if not result.months:
        waiting = f" ({len(result.waiting)} scored month(s) still inside their horizon: {', '.join(result.waiting)})" if result.waiting else ""
        fail(f"monitor: no score run whose {cfg.horizon_days}-day horizon has passed by {end}{waiting}; "
             "run `expansion score` monthly and come back once a horizon has passed", EXIT_INVALID_DATA)
    _print(result)
    for alarm in result.alarms:
        state = "sent" if alarm.key in sent else "already sent" if not any(alarm.kind in p for p in problems) else "NOT sent"
        console.print(f"[red]alarm[/red] ({state}): {alarm.message}", highlight=False)
    for problem in problems:
        err_console.print(f"monitor: {problem}", highlight=False)


def shadow_records_for(source, cfg, end) -> dict:  # noqa: ANN001
    """For the monthly job: the shadow versions' realised months, or none (said) when they cannot be read."""
    try:
        from serving.monitoring_job import shadow_records
        from serving.monitoring_store import MonitoringStore
        from training.monitoring_tracking import shadow_version

        versions = {n: v for n in ("expansion",) if (v := shadow_version(n, cfg)) is not None}
        if not versions:
            return {}
        store = MonitoringStore(cfg.crm_uri)
        try:
            records = shadow_records(store, source, cfg, end, versions)
        finally:
            store.close()
    except Exception as exc:  # noqa: BLE001 - the gate then decides on the pooled backtest alone, and says so
        err_console.print(f"retrain: the shadow's realised months could not be read ({type(exc).__name__}: {exc}); "
                          "the gate decides on the pooled backtest alone")
        return {}
    for name, record in records.items():
        console.print(f"retrain: shadow {name} v{record.version}: {len(record.rows):,} realised account-months, "
                      f"{int(record.rows['outcome'].sum()) if len(record.rows) else 0} positives")
    return records


def monitor_after_retrain(source, cfg, end) -> None:  # noqa: ANN001
    """The monthly job also checks past score runs; a failure here is said and does not fail the job."""
    import datetime as dt

    from serving.monitoring_job import monitor as run_monitor
    from serving.monitoring_job import send_alarms
    from serving.monitoring_store import MonitoringStore

    store = MonitoringStore(cfg.crm_uri)
    try:
        now = dt.datetime.now(dt.UTC)
        result = run_monitor(store, source, cfg, end, now, _promises(cfg))
        if len(result.track):
            from training.monitoring_tracking import log_monitoring

            log_monitoring(result.track, cfg, store.read_track())
        sent, problems = send_alarms(result.alarms, store, cfg, now)
        console.print(f"monitor: {len(result.months)} scored month(s) checked against what happened, "
                      f"{len(result.alarms)} alarm(s), {len(sent)} sent")
        for problem in problems:
            err_console.print(f"monitor: {problem}", highlight=False)
    except Exception as exc:  # noqa: BLE001 - the retrain's result stands; the monitor is said to have failed
        err_console.print(f"monitor: not run ({type(exc).__name__}: {exc})")
    finally:
        store.close()


def _promises(cfg) -> dict:  # noqa: ANN001
    """The backtest's promise per version; an unreachable registry is said, not fatal."""
    try:
        from training.monitoring_tracking import promises

        return promises(cfg)
    except Exception as exc:  # noqa: BLE001 - the record stands without the promise line
        err_console.print(f"monitor: the registry could not be read ({type(exc).__name__}); no backtest promise shown")
        return {}


def _print(result) -> None:  # noqa: ANN001 - serving.monitoring_job.MonitorResult
    track = result.track[result.track["segment"] == "(all)"]
    table = Table(title="expansion: realised performance per scored month (90% interval, account-level bootstrap)")
    for col in ("month", "accounts", "expansions", "metric", "champion", "shadow", "baseline", "champion - baseline"):
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
    console.print(table)
    if result.waiting:
        console.print(f"waiting for their horizon: {', '.join(result.waiting)}")


def register(app: typer.Typer) -> None:
    app.command("monitor")(monitor)
