"""Data commands: ``validate`` checks a data folder against the contract."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.table import Table

from serving.cli.common import EXIT_INVALID_DATA, console, err_console, fail, parse_date


def validate(
    data: Annotated[Path, typer.Option("--data", help="Folder with one Parquet/CSV file (or Parquet folder) per table.")],
    as_of: Annotated[str | None, typer.Option("--as-of", help="No event may lie after this date (default: today).")] = None,
) -> None:
    """Check a data folder against the data contract; exit 2 listing every violation."""
    from features.io import DataError, open_data
    from features.validate import validate as run_checks

    as_of_date = parse_date(as_of)
    try:
        source = open_data(data)
    except DataError as exc:
        fail(str(exc))
    report = run_checks(source, as_of_date)
    summary = Table(title=f"{data} as of {as_of_date}")
    for col in ("table", "rows", "first date", "last date"):
        summary.add_column(col, justify="right" if col == "rows" else "left")
    for s in report.summaries:
        summary.add_row(s.table, f"{s.rows:,}", str(s.first or "-"), str(s.last or "-"))
    for name in report.absent_optional:
        summary.add_row(name, "absent (optional)", "-", "-")
    console.print(summary)
    if report.ok:
        console.print("[green]valid:[/green] every table meets the contract")
        return
    err_console.print(f"[red]invalid:[/red] {len(report.violations)} violation(s)")
    for v in report.violations:
        err_console.print(f"- {v}")
        for row in v.examples:
            err_console.print(f"    {row}")
    raise typer.Exit(EXIT_INVALID_DATA)


def register(app: typer.Typer) -> None:
    app.command("validate")(validate)
