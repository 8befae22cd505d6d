"""Alerts commands: ``expansion alerts`` (run, or a month-long dry run), ``alerts backtest``, ``alerts snooze``."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from serving.cli.alerts_print import print_run, print_simulation, print_track_record
from serving.cli.common import RebuildSnapshots, console, fail, finish, job_errors, open_source, parse_date, say, settings

app = typer.Typer(help="Alerts on leading indicators: once per episode, capped per CSM, with each rule's track record.",
                  invoke_without_command=True, no_args_is_help=False)


@app.callback()
def alerts(
    ctx: typer.Context,
    data: Annotated[Path | None, typer.Option("--data", help="Folder with one Parquet/CSV file (or Parquet folder) per table.")] = None,
    as_of: Annotated[str | None, typer.Option("--as-of", help="Snapshot date (default: the data end, its last complete usage_daily day).")] = None,
    dry_run: Annotated[bool, typer.Option("--dry-run", help="Decide but write and send nothing.")] = False,
    days: Annotated[int | None, typer.Option("--days", min=1, help="With --dry-run: replay daily runs over the DAYS ending at --as-of.")] = None,
) -> None:
    """Alert CSMs on accounts entering a rule's condition, once per episode (see `alerts backtest`, `alerts snooze`)."""
    if ctx.invoked_subcommand is not None:
        return
    if data is None:
        fail("--data is required (the folder of tables to alert on)")
    if days is not None and not dry_run:
        fail("--days replays a window without sending: use it with --dry-run")
    from serving.jobs import alerts_job, alerts_simulation_job, delivery_problem

    cfg = settings()
    day = parse_date(as_of, default_today=False)
    source = open_source(data)
    try:
        with job_errors():
            if days is not None:
                print_simulation(alerts_simulation_job(source, cfg, day, days, say=say), cfg.alerts_weekly_cap)
                return
            run = alerts_job(source, cfg, day, dry_run=dry_run, say=say)
    finally:
        source.close()
    print_run(run)
    finish(delivery_problem(run))


@app.command("backtest")
def backtest(
    data: Annotated[Path, typer.Option("--data", help="Folder with one Parquet/CSV file (or Parquet folder) per table.")],
    out: Annotated[Path | None, typer.Option("--out", help="Also write the table as CSV here.")] = None,
    rebuild_snapshots: RebuildSnapshots = False,
) -> None:
    """Each rule's track record: episodes, the anticipated outcome's rate within the horizon, lift, money."""
    from serving.jobs import alerts_backtest_job

    cfg = settings(rebuild_snapshots)
    source = open_source(data)
    try:
        with job_errors():
            found = alerts_backtest_job(source, cfg)
    finally:
        source.close()
    if out is not None:
        found.record.to_csv(out, index=False)
    print_track_record(found.record, found.inactive, cfg.horizon_days, cfg.currency_symbol, found.rules)


@app.command("snooze")
def snooze(
    account: Annotated[str, typer.Option("--account", help="account_id to snooze.")],
    rule: Annotated[str, typer.Option("--rule", help="Rule name (see the rules file).")],
    until: Annotated[str, typer.Option("--until", help="Last day of the snooze (YYYY-MM-DD).")],
) -> None:
    """Silence one rule for one account until a date (episodes are still recorded, marked snoozed)."""
    from serving.alerts.rules import RuleError, load_rules
    from serving.alerts.run import open_store

    cfg = settings()
    try:
        names = [r.name for r in load_rules(cfg.alerts_rules)]
    except RuleError as exc:
        fail(str(exc))
    if rule not in names:
        fail(f"--rule: {rule!r} is not a rule ({', '.join(names)})")
    store = open_store(cfg)
    try:
        store.snooze(account, rule, parse_date(until))
    finally:
        store.close()
    console.print(f"snoozed {rule} for account {account} until {until}", highlight=False)


def register(root: typer.Typer) -> None:
    root.add_typer(app, name="alerts")
