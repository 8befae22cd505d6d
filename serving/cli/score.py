"""Batch scoring command: ``score`` writes every active account's scores into a CRM sink."""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Annotated

import typer
from rich.table import Table

from features.config import Engine, ModelSource
from serving.cli.common import (
    console,
    err_console,
    fail,
    finish,
    is_interactive,
    job_errors,
    open_source,
    parse_date,
    say,
    settings,
)
from serving.sinks import sink_help


def _read_field_map(path: Path | None) -> dict[str, str] | None:
    if path is None:
        return None
    try:
        mapping = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError) as exc:
        fail(f"field map {path}: cannot read a JSON object: {exc}")
    if not isinstance(mapping, dict) or not all(isinstance(v, str) for v in mapping.values()):
        fail(f"field map {path}: expected a JSON object of row field -> CRM field name (strings)")
    return mapping


def _print_summary(summary) -> None:  # noqa: ANN001 - serving.scoring.batch.BatchSummary, imported lazily
    if summary.kept_newer is not None:
        console.print(
            f"[yellow]kept newer scores:[/yellow] {summary.sink} holds current scores as of {summary.kept_newer}, newer "
            f"than this run's snapshot {summary.as_of}; they stay current. This run's {summary.accounts:,} scores "
            f"(run {summary.run_id}) went to the history only where the sink keeps one. Pass --replace-newer to "
            f"make them current.", highlight=False)
        return
    console.print(
        f"[green]scored[/green] {summary.accounts:,} accounts as of {summary.as_of} into {summary.sink} "
        f"(run {summary.run_id}; {summary.new_accounts:,} new, {summary.dropped_accounts:,} no longer active)"
    )
    bands = Table(title="readiness bands and health")
    for col in ("group", "value", "accounts"):
        bands.add_column(col, justify="right" if col == "accounts" else "left")
    for group, counts in (("readiness", summary.readiness_bands), ("health", summary.health)):
        for value, count in counts.items():
            bands.add_row(group, value, f"{count:,}")
    console.print(bands)
    if len(summary.top_movers):
        movers = Table(title="top movers since the last run (readiness points)")
        for col in ("account", "before", "now", "change", "band", "what moved"):
            movers.add_column(col, justify="left" if col in ("account", "band", "what moved") else "right",
                              overflow="fold")
        for row in summary.top_movers.itertuples():
            band = f"{row.previous_band} -> {row.readiness_band}" if row.previous_band != row.readiness_band else str(row.readiness_band)
            reason = row.change_reason if isinstance(row.change_reason, str) else "-"
            movers.add_row(str(row.account_id), f"{row.previous_score:.1f}", f"{row.readiness_score:.1f}",
                           f"{row.change:+.1f}", band, reason)
        console.print(movers)
    elif summary.new_accounts < summary.accounts:
        console.print("no account's readiness moved since the last run")


def score(
    data: Annotated[str | None, typer.Option("--data", help="Folder with one Parquet/CSV file (or Parquet folder) per table; spark also takes a lake URI (s3a://, gs://, abfss://, file://).")] = None,
    sink: Annotated[
        str | None,
        typer.Option("--sink", help=f"{sink_help()} (default: the SQLite CRM under home)."),
    ] = None,
    as_of: Annotated[str | None, typer.Option("--as-of", help="Snapshot date (default: the data end, its last complete usage_daily day).")] = None,
    field_map: Annotated[Path | None, typer.Option("--field-map", help="JSON object renaming fields for salesforce:/hubspot: files.")] = None,
    models: Annotated[ModelSource, typer.Option("--models", help="Where models come from; 'none' scores with the baseline only.")] = ModelSource.auto,
    chunk_size: Annotated[int, typer.Option("--chunk-size", min=1, help="Accounts scored and written per chunk.")] = 20_000,
    engine: Annotated[Engine, typer.Option("--engine", help="duckdb (in process) or spark (mapInPandas; needs the spark extra).")] = Engine.duckdb,
    features_path: Annotated[str | None, typer.Option("--features", help="Spark only: feature frame Parquet folder or lake URI (from features --engine spark) instead of building it from --data.")] = None,
    scores_out: Annotated[str | None, typer.Option("--scores-out", help="Spark only: also write the scores as Parquet here (a folder or lake URI), partitioned by as_of.")] = None,
    replace_newer: Annotated[bool, typer.Option("--replace-newer", help="Let a run on an older snapshot replace current scores from a newer one (default: it writes history only).")] = False,
) -> None:
    """Score every account active at the snapshot and write the scores to a CRM sink, all or nothing.

    The data is checked against the contract first (exit 2 listing every violation, nothing written).
    """
    from serving.jobs import score_job, score_job_on_spark

    cfg = settings()
    scored_at = dt.datetime.now(dt.UTC)  # the entry point is the one place that reads the clock
    if data is None and (engine is Engine.duckdb or features_path is None):
        fail("give --data (or, with --engine spark, --features)")
    options = dict(sink=sink, models=models.value, field_map=_read_field_map(field_map), replace_newer=replace_newer,
                   chunk_size=chunk_size, scored_at=scored_at, say=say)
    day = parse_date(as_of, default_today=False)
    if engine is Engine.spark:
        with job_errors():
            run = score_job_on_spark(cfg, day, data=data, features_path=features_path, scores_out=scores_out, **options)
        _print_summary(run.summary)
        finish(run.problem)
        return
    source = open_source(data)
    try:
        with job_errors(), _progress() as on_progress:
            run = score_job(source, cfg, day, on_progress=on_progress, **options)
    finally:
        source.close()
    _print_summary(run.summary)  # before the alerts, which may end the command non-zero on an undelivered message
    if run.alerts is not None:
        from serving.cli.alerts_print import print_run

        print_run(run.alerts)
    finish(run.problem)


@contextmanager
def _progress() -> Iterator[Callable[[int, int], None]]:
    """A progress bar on a terminal, plain log lines otherwise; yields the job's ``on_progress(done, total)``."""
    if not is_interactive():
        yield lambda done, total: err_console.print(f"scored {done:,}/{total:,} accounts", highlight=False)
        return
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    with Progress(TextColumn("scoring"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(), console=err_console) as bar:
        task = bar.add_task("score", total=None)
        yield lambda done, total: bar.update(task, completed=done, total=total)


def register(app: typer.Typer) -> None:
    app.command("score")(score)
