"""Batch scoring command: ``score`` writes every active account's scores into a CRM sink."""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path
from typing import Annotated

import typer
from rich.table import Table

from features.config import Engine, ModelSource
from serving.cli.common import (
    EXIT_REGISTRY,
    as_of_or_data_end,
    console,
    data_end,
    err_console,
    fail,
    is_interactive,
    is_uri,
    local_path,
    parse_date,
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


def _print_summary(summary) -> None:  # noqa: ANN001 - serving.batch.BatchSummary, imported lazily
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
    from features.io import DataError, open_data, require_tables
    from serving.batch import snapshot_features
    from serving.cli.data import require_valid
    from serving.models import fail_fast_registry, load_models, scorer_for
    from serving.sinks import open_sink
    from serving.sinks.sql import SinkSchemaError

    fail_fast_registry()  # a registry that is down: the fallback and the note in seconds, not minutes of retries
    cfg = settings()
    scored_at = dt.datetime.now(dt.UTC)  # the entry point is the one place that reads the clock
    if data is None and (engine is Engine.duckdb or features_path is None):
        fail("give --data (or, with --engine spark, --features)")
    try:
        target = open_sink(sink or cfg.crm_uri, cfg, field_map=_read_field_map(field_map), replace_newer=replace_newer)
    except ValueError as exc:
        fail(str(exc))
    if engine is Engine.spark:
        _score_on_spark(cfg, data, features_path, scores_out, target, as_of, scored_at, models, chunk_size)
        return
    try:
        source = open_data(local_path(data, "--data"))
        require_tables(source)
    except DataError as exc:
        target.close()
        fail(str(exc))
    try:
        as_of_date = as_of_or_data_end(as_of, source, command="score")
        require_valid(source, max(as_of_date, data_end(source)), data)
        features = snapshot_features(source, as_of_date, cfg)
        choice = load_models(cfg, models.value)
        err_console.print(f"models: {choice.note}", highlight=False)
        if choice.baseline_over_deployed:
            fail(f"refusing to score with the baseline while deployed models exist ({choice.note}); check "
                 "MLFLOW_TRACKING_URI and the home, or pass --models none to score with the baseline on purpose",
                 EXIT_REGISTRY)
        scorer = scorer_for(choice, cfg)
        try:
            summary = _run(features, scorer, target, as_of_date, scored_at, chunk_size)
        except SinkSchemaError as exc:
            fail(str(exc))
        if models.value != "none":
            _score_shadow(features, cfg, target, summary)
        _print_summary(summary)  # before the alerts, which may exit non-zero on an undelivered message
        # alerts hook (serving/alerts): with EXPANSION_ALERTS_ON_SCORE=true, alert on the snapshot just scored
        if cfg.alerts_on_score:
            from serving.cli.alerts import run_and_print

            run_and_print(source, as_of_date, cfg, features=features)
    finally:
        source.close()
        target.close()
    if choice.registry_unreachable:
        fail(f"scored with a fallback because the registry could not be asked: {choice.note}", EXIT_REGISTRY)


def _score_shadow(features, cfg, target, summary) -> None:  # noqa: ANN001
    """The shadow challenger beside the champion, stored under the run's id (SQL sinks only; said when skipped)."""
    from serving.sinks.sql import SqlSink

    if not isinstance(target, SqlSink):
        return
    try:
        from training.monitoring_tracking import shadow_model

        shadows = {name: m for name in ("expansion",) if (m := shadow_model(name, cfg)) is not None}
    except Exception as exc:  # noqa: BLE001 - the run's scores stand without the shadow's
        err_console.print(f"shadow: not scored, the registry could not be read ({type(exc).__name__})")
        return
    if not shadows:
        return
    from serving.batch import shadow_scores
    from serving.monitoring_store import MonitoringStore

    store = MonitoringStore(target.engine.url.render_as_string(hide_password=False))
    try:
        written = store.write_shadow(shadow_scores(features, shadows, summary.run_id, summary.as_of))
    finally:
        store.close()
    err_console.print(f"shadow: {', '.join(f'{n} v{m.version}' for n, m in shadows.items())} scored beside the champion "
                      f"({written:,} rows, not shown to CSMs)", highlight=False)


def _score_on_spark(cfg, data, features_path, scores_out, target, as_of, scored_at, models, chunk_size) -> None:  # noqa: ANN001
    """``score --engine spark``: a local --data folder is checked against the contract first; lake URIs stay URIs."""
    from serving.spark_batch import score_on_spark

    if data is not None and (not is_uri(data) or data.startswith("file://")):
        from features.io import DataError, open_data
        from serving.cli.data import require_valid

        try:
            source = open_data(local_path(data, "--data"))
        except DataError as exc:
            target.close()
            fail(str(exc))
        try:
            bound = max(parse_date(as_of, default_today=False) or data_end(source), data_end(source))
            require_valid(source, bound, data)
        finally:
            source.close()
    from serving.models import load_models

    choice = load_models(cfg, models.value)  # the same rules as on DuckDB: no silent baseline, a fallback exits 3
    if choice.baseline_over_deployed:
        target.close()
        fail(f"refusing to score with the baseline while deployed models exist ({choice.note}); check "
             "MLFLOW_TRACKING_URI and the home, or pass --models none to score with the baseline on purpose",
             EXIT_REGISTRY)
    try:
        summary = score_on_spark(cfg, data, features_path, scores_out, target, parse_date(as_of, default_today=False),
                                 scored_at, models.value, chunk_size,
                                 on_as_of=lambda day, why: err_console.print(f"score: as of {day} ({why})", highlight=False))
    finally:
        target.close()
    _print_summary(summary)
    if choice.registry_unreachable:
        fail(f"scored with a fallback because the registry could not be asked: {choice.note}", EXIT_REGISTRY)


def _run(features, scorer, target, as_of_date, scored_at, chunk_size):  # noqa: ANN001, ANN202
    """Run the job with a progress bar on a terminal, plain log lines otherwise."""
    from rich.progress import (
        BarColumn,
        MofNCompleteColumn,
        Progress,
        TextColumn,
        TimeElapsedColumn,
    )

    from serving.batch import score_snapshot

    total = len(features)
    if is_interactive():
        with Progress(TextColumn("scoring"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(), console=err_console) as bar:
            task = bar.add_task("score", total=total)
            return score_snapshot(
                features, scorer, target, as_of_date, scored_at, chunk_size=chunk_size, on_chunk=lambda n: bar.advance(task, n)
            )
    done = 0

    def log(n: int) -> None:
        nonlocal done
        done += n
        err_console.print(f"scored {done:,}/{total:,} accounts", highlight=False)

    return score_snapshot(features, scorer, target, as_of_date, scored_at, chunk_size=chunk_size, on_chunk=log)


def register(app: typer.Typer) -> None:
    app.command("score")(score)
