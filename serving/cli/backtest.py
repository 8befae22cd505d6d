"""``expansion backtest``: how the product would have done for this company, month by month."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.table import Table

from serving.cli.common import RebuildSnapshots, console, job_errors, open_source, parse_date, say, settings

SHOWN = ("roc_auc", "pr_auc", "lift_top_decile", "precision_top_book", "top_decile_expansion_mrr_share", "brier", "ece")
BOOKS_SHOWN = 15


def backtest(
    data: Annotated[str, typer.Option("--data", help="Folder with the canonical tables (a path or file:// URI).")],
    cutoffs: Annotated[int, typer.Option("--cutoffs", min=1, help="Replay the newest N eligible month ends.")] = 6,
    start: Annotated[str | None, typer.Option("--from", help="First cut-off (a month end); with --to instead of --cutoffs.")] = None,
    end: Annotated[str | None, typer.Option("--to", help="Last cut-off (default: the newest eligible month end).")] = None,
    as_of: Annotated[str | None, typer.Option("--as-of", help="Cut the data here (default: the data end, its last complete usage_daily day).")] = None,
    rounds: Annotated[int, typer.Option("--rounds", min=1, help="Most boosting rounds (each job picks the count).")] = 500,
    out: Annotated[Path, typer.Option("--out", help="CSV of the pooled figures; *_cutoffs.csv and *_books.csv beside it.")] = Path("backtest.csv"),
    rebuild_snapshots: RebuildSnapshots = False,
) -> None:
    """Replay the monthly job at past month ends on data cut there; compare what it would have ranked with what happened."""
    import logging

    from serving.jobs import backtest_job

    logging.getLogger("mlflow").setLevel(logging.ERROR)
    cfg = settings(rebuild_snapshots)
    day, first_cut, last_cut = (parse_date(d, default_today=False) for d in (as_of, start, end))
    source = open_source(data)
    try:
        with job_errors():
            run = backtest_job(source, cfg, day, cutoffs=cutoffs, start=first_cut, end=last_cut, rounds=rounds, out=out,
                               params={"data": str(data)}, say=say)
    finally:
        source.close()
    _print(run.result)
    console.print(f"wrote {out} (and {out.stem}_cutoffs.csv, {out.stem}_books.csv); logged to MLflow as run 'backtest'")


COLUMNS = (("served", "served"), ("refit model", "model"), ("baseline", "baseline"),
           ("served - baseline", "served - baseline"), ("refit - baseline", "model - baseline"))


def _print(result) -> None:  # noqa: ANN001 - training.backtest.BacktestResult
    from training.backtest import size_gain

    summary = result.summary
    for name, part in summary.groupby("model_name", sort=False):
        positives = int(part["positives"].iloc[0])
        table = Table(title=f"{name}: pooled over the replayed months, {positives} positives in {int(part['rows'].iloc[0]):,} "
                            "account-months (90% interval, account-level bootstrap). 'served' is what the job would "
                            "have served (the champion after each gate, else the baseline); 'refit' is each month's new model")
        table.add_column("metric")
        for title, _ in COLUMNS:
            table.add_column(title, justify="right")
        for metric in SHOWN:
            rows = part[part["metric"] == metric].set_index("scorer")
            if rows.empty:
                continue
            cells = [f"{rows.at[s, 'value']:.3f} [{rows.at[s, 'low']:.3f}, {rows.at[s, 'high']:.3f}]" if s in rows.index
                     else "-" for _, s in COLUMNS]
            table.add_row(metric, *cells)
        console.print(table)
        if "served_by" in part.columns:
            console.print(f"{name} served: {part['served_by'].iloc[0]}", highlight=False)
        words = size_gain(summary, name)
        if words:
            console.print(f"{name} (served): {words}", highlight=False)
    decisions = Table(title="the monthly job at each cut-off")
    for col in ("cut-off", "model", "gate", "serves after", "why"):
        decisions.add_column(col)
    for r in result.cutoffs.itertuples():
        decisions.add_row(r.cutoff, r.model, r.decision, r.served, r.reasons)
    console.print(decisions)
    books = result.books[result.books["model_name"] == "expansion"].nlargest(BOOKS_SHOWN, "book_rows")
    table = Table(title="expansion: precision of each CSM's top 20% (largest books; all in the CSV)")
    for col in ("CSM", "account-months", "expansions", "top accounts", "model precision", "baseline precision"):
        table.add_column(col, justify="left" if col == "CSM" else "right")
    for r in books.itertuples():
        table.add_row(str(r.csm_owner), str(r.book_rows), str(r.positives), str(r.model_top_accounts),
                      f"{r.model_precision:.2f}", f"{r.baseline_precision:.2f}")
    console.print(table)


def register(app: typer.Typer) -> None:
    app.command("backtest")(backtest)
