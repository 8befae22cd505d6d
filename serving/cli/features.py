"""Feature commands: ``features`` builds the point-in-time feature frame of a data folder."""

from __future__ import annotations

import datetime as dt
from pathlib import Path
from typing import Annotated

import typer

from features.config import Engine
from serving.cli.common import (
    EXIT_INVALID_DATA,
    console,
    err_console,
    fail,
    is_interactive,
    local_path,
    parse_date,
    settings,
)


def _snapshot_dates(
    as_of: list[str] | None, start: str | None, end: str | None, first_day: dt.date, data_end: dt.date,
) -> list[dt.date]:
    """Explicit --as-of dates, or every month end from --from (default: the data's first) to --to (default: its end).

    A snapshot after the data end is refused: the data cannot say what happened there, and
    an open subscription would show its account as active with no usage.
    """
    from features.spine import month_ends

    if as_of and (start or end):
        fail("give either --as-of dates or --from/--to, not both")
    if as_of:
        dates = sorted({parse_date(v) for v in as_of})
    else:
        first = parse_date(start, default_today=False) or first_day
        dates = [parse_date(end, default_today=False) or data_end]
        if dates[-1] <= data_end:
            try:
                dates = month_ends(first, dates[-1])
            except ValueError as exc:
                fail(str(exc))
            if not dates:
                fail(f"no month end between {first} and {data_end if end is None else end}")
    if dates[-1] > data_end:
        fail(f"snapshot {dates[-1]} is after the data end {data_end} (the newest usage_daily date, or --data-end): "
             f"nothing after it is known, so give snapshot dates up to {data_end}")
    return dates


def features(
    out: Annotated[str, typer.Option("--out", help="Parquet file to write the feature frame to (spark: a folder or lake URI, partitioned by as_of).")],
    data: Annotated[str | None, typer.Option("--data", help="Folder with one Parquet/CSV file (or Parquet folder) per table; spark also takes a lake URI.")] = None,
    database: Annotated[str | None, typer.Option("--database", help="Spark only: read the canonical tables from this metastore database.")] = None,
    as_of: Annotated[list[str] | None, typer.Option("--as-of", help="Snapshot date (repeatable). Default: every month end the data covers.")] = None,
    start: Annotated[str | None, typer.Option("--from", help="First date of a month-end snapshot range (default: the data's first day).")] = None,
    end: Annotated[str | None, typer.Option("--to", help="Last date of the range (default: the data end).")] = None,
    horizon_days: Annotated[int | None, typer.Option("--horizon-days", min=1, help="Label horizon H in days.")] = None,
    data_end: Annotated[str | None, typer.Option("--data-end", help="Last date the data covers (default: last usage date).")] = None,
    engine: Annotated[Engine, typer.Option("--engine", help="Execution engine: duckdb, or spark (needs the spark extra).")] = Engine.duckdb,
    show_sql: Annotated[bool, typer.Option("--show-sql", help="Print the SQL the engine receives.")] = False,
) -> None:
    """Build the point-in-time feature frame (features + labels) for every account with MRR > 0 at each snapshot."""
    from rich.progress import Progress, SpinnerColumn, TextColumn, TimeElapsedColumn

    from features.build import build_features, feature_sql
    from features.io import DataError, open_data

    cfg = settings()
    if horizon_days is not None:
        cfg = cfg.model_copy(update={"horizon_days": horizon_days})
    end_date = parse_date(data_end, default_today=False)
    if engine is Engine.spark:
        _features_on_spark(data, database, out, (as_of, start, end), cfg, end_date)
        return
    if data is None:
        err_console.print("[red]error:[/red] give --data FOLDER (--database needs --engine spark)")
        raise typer.Exit(EXIT_INVALID_DATA)
    out = Path(out)
    try:
        source = open_data(local_path(data, "--data"))
        first_day = source.span()[0]
        if end_date is None:
            found = source.data_end()
            end_date = found.day
            if found.partial:
                err_console.print(f"features: data end {found.day} ({found.describe()})", highlight=False)
        dates = _snapshot_dates(as_of, start, end, first_day, end_date)
        _say_dates(dates, end_date, data_end is None)
        if show_sql:
            console.print(feature_sql(source, dates, cfg, dialect=engine, data_end=end_date), markup=False)
        with Progress(SpinnerColumn(), TextColumn("{task.description}"), TimeElapsedColumn(),
                      console=err_console, disable=not is_interactive()) as progress:
            progress.add_task(f"building features for {len(dates)} snapshot(s)", total=None)
            frame = build_features(source, dates, cfg, data_end=end_date)
    except DataError as exc:
        fail(str(exc))
    out.parent.mkdir(parents=True, exist_ok=True)
    frame.to_parquet(out, index=False)
    labelled = int(frame["expanded"].notna().sum())
    console.print(
        f"wrote {len(frame):,} rows ({frame['account_id'].nunique():,} accounts, {len(dates)} snapshot(s), "
        f"{labelled:,} with complete labels) to {out}"
    )


def _features_on_spark(data: str | None, database: str | None, out: str, asked: tuple, cfg, end_date) -> None:  # noqa: ANN001
    """Build the same feature frame on Spark and write it as Parquet partitioned by as_of."""
    from features.build import usage_span
    from features.engines import open_engine, spark_feature_frame, write_partitioned
    from features.io import DataError

    try:
        engine = open_engine(Engine.spark, cfg, data=data, database=database)
        first_day, last_day = usage_span(engine.tables)
        dates = _snapshot_dates(*asked, first_day, end_date or last_day)
        _say_dates(dates, end_date or last_day, end_date is None)
        frame, release = spark_feature_frame(engine, dates, cfg, data_end=end_date)
        try:
            write_partitioned(frame, out)
        finally:
            release()
    except DataError as exc:
        fail(str(exc))
    console.print(f"wrote the feature frame of {len(dates)} snapshot(s) from {engine.location} to {out} (partitioned by as_of)")


def _say_dates(dates: list[dt.date], end: dt.date, default_end: bool) -> None:
    """Which snapshots and which data end the command uses (every command with dates says so)."""
    why = "the data end: the last complete usage_daily day" if default_end else "--data-end"
    err_console.print(f"features: {len(dates)} snapshot(s) {dates[0]} .. {dates[-1]}, data end {end} ({why})",
                      highlight=False)


def write_docs(
    out: Annotated[Path, typer.Option("--out", help="Where to write the feature reference.")] = Path("docs/features.md"),
) -> None:
    """Regenerate the feature reference (docs/features.md) from the registry."""
    from features.registry import render_docs

    out.write_text(render_docs())
    console.print(f"wrote {out}")


def register(app: typer.Typer) -> None:
    app.command("features")(features)
    app.command("features-docs")(write_docs)
