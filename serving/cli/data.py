"""Data commands: ``validate`` checks a data folder against the contract."""

from __future__ import annotations

from typing import Annotated

import typer
from rich.table import Table

from serving.cli.common import EXIT_INVALID_DATA, console, err_console, fail, local_path, parse_date, print_violations, say


def validate(
    data: Annotated[str, typer.Option("--data", help="Folder with one Parquet/CSV file (or Parquet folder) per table (a path or file:// URI).")],
    as_of: Annotated[str | None, typer.Option("--as-of", help="No event may lie after this date (default: the newest usage_daily day, even when partly loaded).")] = None,
) -> None:
    """Check a data folder against the data contract; exit 2 listing every violation."""
    from features.io import DataError, open_data
    from features.validate import validate as run_checks

    try:
        source = open_data(local_path(data, "--data"))
    except DataError as exc:
        fail(str(exc))
    if as_of is None and "usage_daily" not in source.present:
        as_of_date = parse_date(None)  # nothing says where the data ends: no event may lie in the future
        err_console.print(f"validate: as of {as_of_date} (today: usage_daily is missing)", highlight=False)
    elif as_of is None:
        # the bound is the newest day even when it is partly loaded: its rows are there, and not in the future
        try:
            end = source.data_end()
        except (DataError, ValueError) as exc:
            fail(str(exc))
        as_of_date = end.newest
        note = f"; the commands default to {end.day}, the last complete day" if end.partial else ""
        say(f"validate: as of {as_of_date} (the newest usage_daily day{note})")
    else:
        as_of_date = parse_date(as_of)
        say(f"validate: as of {as_of_date} (--as-of)")
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
    print_violations(report.violations)
    raise typer.Exit(EXIT_INVALID_DATA)


def register(app: typer.Typer) -> None:
    app.command("validate")(validate)
