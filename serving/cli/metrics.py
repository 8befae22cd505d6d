"""``expansion metrics``: NRR / GRR, rates, expansion kinds and cohort views of a data folder."""

from __future__ import annotations

import datetime as dt
import json
import math
from enum import Enum
from pathlib import Path
from typing import Annotated

import pandas as pd
import typer
from rich.console import Console
from rich.table import Table

from serving.cli.common import checked, console, err_console, fail, open_source, parse_date


class Period(str, Enum):
    month = "month"
    quarter = "quarter"
    year = "year"
    ttm = "ttm"


class By(str, Enum):
    segment = "segment"
    industry = "industry"
    channel = "channel"
    cohort = "cohort"
    owner = "owner"


class Format(str, Enum):
    table = "table"
    json = "json"
    csv = "csv"


class View(str, Enum):
    periods = "periods"
    kinds = "kinds"
    frequency = "frequency"
    time_to_expansion = "time-to-expansion"
    cohort_curve = "cohort-curve"
    cohort_nrr = "cohort-nrr"
    pipeline = "pipeline"


# Columns of the readable table per view; JSON and CSV carry every column.
_TABLE_COLUMNS = {
    View.periods: ["period_start", "group", "accounts_start", "starting_mrr", "expansion_mrr",
                   "contraction_mrr", "churned_mrr", "nrr_pct", "grr_pct", "nrr_band", "expansion_rate_pct",
                   "logo_churn_pct"],
    View.cohort_curve: ["group", "months", "accounts", "expanded_accounts", "expanded_pct"],
    View.cohort_nrr: ["group", "months", "accounts", "base_mrr", "mrr", "nrr_pct", "nrr_band"],
}
_HEADERS = {
    "period_start": "from", "accounts_start": "logos", "starting_mrr": "start MRR", "expansion_mrr": "+exp",
    "contraction_mrr": "-contr", "churned_mrr": "-churn", "nrr_pct": "NRR %", "grr_pct": "GRR %",
    "nrr_band": "band", "expansion_rate_pct": "exp %", "logo_churn_pct": "logo churn %",
}


def _open_tables(data: str, as_of: str | None):  # noqa: ANN202 - (MetricTables, date), imported lazily
    """Open and validate the folder (exit 2 with every violation when it breaks the contract); the as-of date used."""
    from features.metrics import MetricTables

    source = open_source(data)
    as_of_date = checked(source, as_of, command="metrics")
    return MetricTables.from_source(source), as_of_date


def _compute(view: View, tables, period: Period, by: str | None, start: dt.date | None, as_of: dt.date) -> pd.DataFrame:
    from features import cohorts
    from features.metrics import period_metrics

    if view is View.periods:
        return period_metrics(tables, period.value, by, start, as_of)
    if view is View.kinds:
        return cohorts.expansion_by_kind(tables, start or tables.data_span()[0], as_of, by)
    if view is View.frequency:
        return cohorts.expansion_frequency(tables, as_of, by)
    if view is View.time_to_expansion:
        return cohorts.time_to_first_expansion(tables, as_of, by)
    if view is View.cohort_curve:
        return cohorts.cohort_expansion_curve(tables, as_of, by or "cohort")
    return cohorts.cohort_nrr(tables, as_of, by or "cohort")


def _plain(value: object) -> object:
    """A JSON-ready scalar: NaN -> None, dates -> ISO strings, numpy numbers -> Python numbers."""
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return None
    if isinstance(value, (dt.date, pd.Timestamp)):
        return value.isoformat()[:10]
    return value.item() if hasattr(value, "item") else value


def to_records(frame: pd.DataFrame) -> list[dict]:
    """Rows as plain dicts, ready for ``json.dumps``."""
    return [{k: _plain(v) for k, v in row.items()} for row in frame.astype(object).to_dict("records")]


def _cell(column: str, value: object) -> str:
    value = _plain(value)
    if value is None:
        return "-"
    if isinstance(value, float):
        return f"{value:,.1f}" if column.endswith("_pct") or column.startswith("months") else f"{value:,.0f}"
    return str(value)


def _print_table(frame: pd.DataFrame, view: View, title: str) -> None:
    columns = _TABLE_COLUMNS.get(view, list(frame.columns))
    table = Table(title=title)
    for col in columns:
        numeric = pd.api.types.is_numeric_dtype(frame[col])
        header = _HEADERS.get(col, col.replace("_", " "))
        table.add_column(header, justify="right" if numeric else "left", no_wrap=col in ("period_start", "group"))
    for row in frame[columns].itertuples(index=False):
        table.add_row(*(_cell(c, v) for c, v in zip(columns, row)))
    # Piped output has no terminal width; a fixed wide one keeps the columns readable in logs.
    (console if console.is_terminal else Console(width=160)).print(table)


def metrics(
    data: Annotated[str, typer.Option("--data", help="Folder with one Parquet/CSV file (or Parquet folder) per table (a path or file:// URI).")],
    period: Annotated[Period, typer.Option("--period", help="Length of each period (ttm = trailing 12 months).")] = Period.month,
    by: Annotated[By | None, typer.Option("--by", help="Break every figure down by this account attribute.")] = None,
    fmt: Annotated[Format, typer.Option("--format", help="table for people, json or csv for machines.")] = Format.table,
    plots: Annotated[Path | None, typer.Option("--plots", help="Also write PNG charts into this folder.")] = None,
    as_of: Annotated[str | None, typer.Option("--as-of", help="Only periods ending by this date count (default: the data end, its last complete usage_daily day).")] = None,
    start: Annotated[str | None, typer.Option("--start", help="First day periods may start (default: first subscription).")] = None,
    view: Annotated[View, typer.Option("--view", help="Which report: retention per period, or an expansion view.")] = View.periods,
) -> None:
    """Net and gross revenue retention, expansion and churn rates per period and group, with benchmark bands."""
    start_date = parse_date(start, default_today=False)
    tables, as_of_date = _open_tables(data, as_of)
    group_by = by.value if by else None
    if view is View.pipeline:
        return _pipeline(data, as_of_date, group_by, fmt)
    if by is By.owner:
        fail("--by owner applies to --view pipeline only (opportunity owners)")
    frame = _compute(view, tables, period, group_by, start_date, as_of_date)
    if view is View.periods and frame.empty:
        from features.metrics import no_complete_period

        first = start_date or tables.data_span()[0]
        fail(no_complete_period(period.value, first, as_of_date) if first <= as_of_date
             else f"--start {first} lies after the as-of date {as_of_date}: no period to report")
    if fmt is Format.json:
        print(json.dumps(to_records(frame), indent=1))
    elif fmt is Format.csv:
        print(frame.to_csv(index=False), end="")
    else:
        label = f"{view.value} by {group_by}" if group_by else view.value
        label += f" per {period.value}" if view is View.periods else ""
        _print_table(frame, view, f"{label} as of {as_of_date}")
    if plots is not None:
        _write_plots(tables, plots, period, group_by, start_date, as_of_date, frame if view is View.periods else None)


def _pipeline(data: Path, as_of: dt.date, by: str | None, fmt: Format) -> None:
    """The pipeline view: open pipeline by stage, coverage, stage conversion, zombies and win rate."""
    from features.io import open_data
    from features.deal_metrics import PIPELINE_GROUPINGS, load_pipeline, pipeline_report
    from serving.cli.common import settings

    if by is not None and by not in PIPELINE_GROUPINGS:
        fail(f"--by {by}: the pipeline view groups by {' or '.join(PIPELINE_GROUPINGS)}")
    cfg = settings()
    try:
        tables = load_pipeline(open_data(data))
    except ValueError as exc:
        fail(str(exc))
    report = pipeline_report(tables, as_of, cfg.opportunity_stages, by, cfg.expansion_target_arr_quarter)
    if fmt is Format.json:
        print(json.dumps({name: to_records(frame) for name, frame in report.items()}, indent=1))
        return
    for name, frame in report.items():
        if fmt is Format.csv:
            print(f"# {name}")
            print(frame.to_csv(index=False), end="")
        else:
            _print_table(frame, View.pipeline, f"pipeline {name.replace('_', ' ')}" + (f" by {by}" if by else "")
                         + f" as of {as_of}")


def _write_plots(tables, folder: Path, period: Period, by: str | None, start: dt.date | None,
                 as_of: dt.date, periods: pd.DataFrame | None) -> None:
    from features.cohorts import cohort_expansion_curve
    from features.metrics import period_metrics
    from serving.cli.report_plots import cohort_curve_chart, nrr_trend_chart

    folder.mkdir(parents=True, exist_ok=True)
    if periods is None:
        periods = period_metrics(tables, period.value, by, start, as_of)
    written = [nrr_trend_chart(periods, folder / "nrr_trend.png", f"NRR per {period.value}" + (f" by {by}" if by else "")),
               cohort_curve_chart(cohort_expansion_curve(tables, as_of, "cohort"), folder / "cohort_expansion.png")]
    err_console.print("wrote " + ", ".join(str(p) for p in written))


def register(app: typer.Typer) -> None:
    app.command("metrics")(metrics)
