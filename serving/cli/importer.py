"""``expansion import``: tables from Stripe, Salesforce, HubSpot, Segment, Amplitude or Mixpanel into the contract."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer
from rich.table import Table

from serving.cli.common import console, err_console, fail, parse_date


def load_map(path: Path | None) -> dict:
    """The identity and field map (TOML); empty when none is given."""
    if path is None:
        return {}
    import tomllib

    try:
        return tomllib.loads(path.read_text())
    except (OSError, tomllib.TOMLDecodeError) as exc:
        fail(f"--map {path}: {exc}")


def import_command(
    sources: Annotated[str, typer.Argument(help="Comma-separated sources: stripe, salesforce, hubspot, segment, rudderstack, amplitude, mixpanel.")],
    location: Annotated[str, typer.Option("--from", help="Folder of CSV/Parquet exports (one subfolder per source, or the files "
                                                         "themselves), or a database URI (duckdb:///file.duckdb, postgresql://...).")],
    out: Annotated[Path, typer.Option("--out", help="Contract folder to write (replaced only when the whole import succeeds).")],
    map_file: Annotated[Path | None, typer.Option("--map", help="TOML file: identity map and field choices (docs/importers.md).")] = None,
    report: Annotated[bool, typer.Option("--report", help="Print match rates, every unmatched id and billing ARR against CRM amounts.")] = False,
    as_of: Annotated[str | None, typer.Option("--as-of", help="No imported event may lie after this date (default: the data end, the newest imported usage day).")] = None,
    layout: Annotated[str | None, typer.Option("--layout", help="Connector layout of the exports: fivetran, airbyte, stitch or "
                                                                 "dlt (default: detected from the files).")] = None,
    currency: Annotated[str | None, typer.Option("--currency", help="Reporting currency (ISO code); amounts in others are "
                                                                     "converted with --rates.")] = None,
    rates: Annotated[Path | None, typer.Option("--rates", help="CSV of date, currency, rate (units of --currency per unit).")] = None,
) -> None:
    """Import other tools' exports into the data contract, all or nothing; the result passes `expansion validate`."""
    from features.importers import money
    from features.importers.errors import ImportFailed
    from features.importers.run import import_sources

    config = load_map(map_file)
    names = [s.strip().lower() for s in sources.split(",") if s.strip()]
    try:
        result = import_sources(names, location, out, config, parse_date(as_of, default_today=False),
                                money.load(currency, rates), layout)
    except ImportFailed as exc:
        for problem in exc.problems:
            err_console.print(f"- {problem}", highlight=False)
        fail(f"import failed with {len(exc.problems)} problem(s); nothing was written to {out}")
    summary = Table(title=f"{out} from {', '.join(names)}")
    summary.add_column("table")
    summary.add_column("rows", justify="right")
    for name, n in result.rows.items():
        summary.add_row(name, f"{n:,}")
    console.print(summary)
    for note in result.notes:
        console.print(f"note: {note}", highlight=False)
    if report:
        console.print_json(json.dumps(result.report, default=str))


def register(app: typer.Typer) -> None:
    app.command("import")(import_command)
