"""``expansion demo``: the whole product end to end on embedded defaults.

It composes the same command functions a user runs one by one (generate, validate,
metrics, features, train, deploy, score, forecast, alerts), so the demo shows exactly what
the CLI does, and leaves the pages with every panel filled: the forecast is stored, the
top accounts' recommended plays are logged as planned, and the serve command it prints
sets a quarterly expansion target so the pipeline coverage line has something to cover.
Re-running is safe: the company is regenerated only when its parameters change, a
retrained model is promoted only through the gate, and the CRM upsert is idempotent.
"""

from __future__ import annotations

import datetime as dt
import json
import time
from pathlib import Path
from typing import Annotated

import typer
from rich.rule import Rule
from rich.table import Table

from features.config import Engine, ModelSource, Settings
from serving.cli.common import console, job_errors, open_source, parse_date, settings

STEPS = 9


def _step(n: int, title: str) -> float:
    console.print(Rule(f"[bold]{n}/{STEPS} {title}"))
    return time.perf_counter()


def _done(started: float) -> None:
    console.print(f"[dim]{time.perf_counter() - started:.1f} s[/dim]")


def _ensure_company(data: Path, accounts: int, months: int, seed: int, as_of: dt.date) -> None:
    """Generate the demo company unless the same one is already on disk."""
    from serving.cli import synth as cli_synth

    params = {"accounts": accounts, "months": months, "seed": seed, "as_of": as_of.isoformat()}
    marker = data / "_demo_params.json"
    if marker.is_file() and json.loads(marker.read_text()) == params:
        console.print(f"reusing the company in {data} ({accounts:,} accounts, {months} months, seed {seed})")
        return
    cli_synth.generate(out=data, accounts=accounts, months=months, seed=seed, as_of=as_of.isoformat())
    marker.write_text(json.dumps(params))


def _months_before(day: dt.date, months: int) -> dt.date:
    """The first day of the month ``months`` before ``day``'s month."""
    index = day.year * 12 + day.month - 1 - months
    return dt.date(index // 12, index % 12 + 1, 1)


def _top_accounts(crm_db: Path, limit: int) -> str | None:
    """Print the accounts to call this week from the CRM table the batch job wrote; return the first id."""
    import sqlalchemy as sa

    from serving.store.engine import sql_engine

    engine = sql_engine(f"sqlite:///{crm_db}", what="CRM sink", wal=False)
    query = sa.text(
        "SELECT account_id, readiness_score, readiness_band, churn_probability, health, "
        "expected_expansion_usd, recommended_play, reason_1 FROM account_scores "
        "ORDER BY expected_expansion_usd DESC NULLS LAST, readiness_score DESC LIMIT :limit"
    )
    with engine.connect() as conn:
        rows = conn.execute(query, {"limit": limit}).mappings().all()
    engine.dispose()
    # Without an expansion champion there is no expected value: the baseline readiness ranks instead.
    by_value = any(r["expected_expansion_usd"] is not None for r in rows)
    order = "expected expansion value" if by_value else "baseline readiness: no expansion champion"
    table = Table(title=f"This week's top {limit} accounts to call (by {order})")
    for col, justify in (("account", "left"), ("readiness", "right"), ("churn risk", "right"),
                         ("expected exp. $", "right"), ("play", "left"), ("top reason", "left")):
        table.add_column(col, justify=justify, overflow="fold")
    for r in rows:
        churn = "-" if r["churn_probability"] is None else f"{100 * r['churn_probability']:.0f} %"
        value = "-" if r["expected_expansion_usd"] is None else f"{r['expected_expansion_usd']:,.0f}"
        table.add_row(
            str(r["account_id"]), f"{r['readiness_score']:.0f} {r['readiness_band']}",
            f"{churn} {r['health']}", value, str(r["recommended_play"] or "-"), str(r["reason_1"] or "-"),
        )
    console.print(table)
    return str(rows[0]["account_id"]) if rows else None


def _next_commands(home: Path, tracking_uri: str, example_account: str | None) -> None:
    account = example_account or "ACCOUNT_ID"
    console.print(Rule("[bold]next"))
    console.print(
        "Open the MLflow UI (runs, metrics next to the baseline, registered models):\n"
        f"  .venv/bin/mlflow ui --backend-store-uri {tracking_uri} --host 127.0.0.1 --port 5000\n"
        "Start the scoring service and query it:\n"
        f"  EXPANSION_HOME={home} EXPANSION_API_KEY=demo-key-for-this-laptop-only .venv/bin/expansion serve --port 3000\n"
        "  curl -s -X POST http://127.0.0.1:3000/score -H 'Authorization: Bearer demo-key-for-this-laptop-only' \\\n"
        f"       -H 'Content-Type: application/json' -d '{{\"accounts\": [{{\"account_id\": \"{account}\"}}]}}'\n"
        "Read the scores the batch job wrote:\n"
        f"  sqlite3 {home / 'crm.db'} 'SELECT * FROM account_scores LIMIT 5'",
        highlight=False, soft_wrap=True,
    )


def demo(
    accounts: Annotated[int, typer.Option("--accounts", min=50, help="Accounts in the generated company.")] = 3000,
    months: Annotated[int, typer.Option("--months", min=12, help="Months of history.")] = 24,
    seed: Annotated[int, typer.Option("--seed", help="Random seed of the company.")] = 7,
    as_of: Annotated[str | None, typer.Option("--as-of", help="Last day of the data (default: end of last month).")] = None,
    top: Annotated[int, typer.Option("--top", min=1, help="How many accounts to list at the end.")] = 10,
) -> None:
    """Run the whole product on a generated company: NRR report, features, training, CRM scores, forecast, alerts, who to call."""
    from serving.cli import data as cli_data
    from serving.cli import features as cli_features
    from serving.cli import forecast as cli_forecast
    from serving.cli.alerts_print import print_run
    from serving.cli import metrics as cli_metrics
    from serving.cli import score as cli_score
    from serving.cli import serve as cli_serve
    from serving.cli import train as cli_train

    cfg = settings()
    today = dt.date.today()
    as_of_date = parse_date(as_of, default_today=False) or today.replace(day=1) - dt.timedelta(days=1)
    home = cfg.home.resolve()
    data, frame_path = home / "demo" / "data", home / "demo" / "features.parquet"
    home.mkdir(parents=True, exist_ok=True)
    began = time.perf_counter()

    t = _step(1, "generate a SaaS company")
    _ensure_company(data, accounts, months, seed, as_of_date)
    cli_data.validate(data=data, as_of=as_of_date.isoformat())
    _done(t)

    t = _step(2, "net revenue retention, last four quarters")
    start = _months_before(as_of_date, 11)
    cli_metrics.metrics(data=data, period=cli_metrics.Period.quarter, by=None, fmt=cli_metrics.Format.table,
                        plots=home / "demo" / "plots", as_of=as_of_date.isoformat(), start=start.isoformat(),
                        view=cli_metrics.View.periods)
    cli_metrics.metrics(data=data, period=cli_metrics.Period.ttm, by=cli_metrics.By.segment,
                        fmt=cli_metrics.Format.table, plots=None, as_of=as_of_date.isoformat(),
                        start=start.isoformat(),
                        view=cli_metrics.View.periods)
    _done(t)

    t = _step(3, "point-in-time features at every month end")
    # the first three months only warm up the 90-day windows
    first = _months_before(as_of_date, months - 3)
    cli_features.features(data=data, out=frame_path, as_of=None, start=first.isoformat(),
                          end=as_of_date.isoformat(), horizon_days=None, data_end=as_of_date.isoformat(),
                          engine=Engine.duckdb, show_sql=False)
    _done(t)

    t = _step(4, "train expansion and churn models, gate against the baseline")
    cli_train.train(features=frame_path, rounds=500, cutoffs=6)  # the newest six cut-offs keep the demo quick
    _done(t)

    t = _step(5, "deploy the champions and the newest snapshot to the service")
    snapshot = home / "demo" / "snapshot.parquet"
    _newest_snapshot(frame_path, snapshot)
    cli_serve.deploy(features=snapshot, models=True)
    _done(t)

    t = _step(6, "batch-score every active account into the CRM table")
    cli_score.score(data=data, sink=cfg.crm_uri, as_of=as_of_date.isoformat(), field_map=None,
                    models=ModelSource.auto, chunk_size=20_000)
    _done(t)

    t = _step(7, "next quarter's forecast, stored for the leadership page")
    cli_forecast.forecast(data=data, horizon_days=cfg.horizon_days, as_of=as_of_date.isoformat(), track=False,
                          backtest=False, store=None, rounds=300, draws=2000, as_json=False)
    _done(t)

    t = _step(8, "alerts on leading indicators (a dry run: nothing is sent)")
    from serving.jobs import alerts_job

    source = open_source(data)
    try:
        with job_errors():
            print_run(alerts_job(source, cfg, as_of_date, dry_run=True))
    finally:
        source.close()
    _done(t)

    t = _step(9, "who to call this week")
    example, planned = _top_accounts(home / "crm.db", top), _plan_top_plays(home / "crm.db", cfg, data, top)
    console.print(f"logged the recommended play as planned for {planned[0]} of them ({planned[1]} already were), by "
                  "demo-leader, so the play log and the leadership page's plays panel show a week's start", highlight=False)
    target = _quarterly_target(data, as_of_date)
    _done(t)
    _next_commands(home, cfg.tracking_uri, example)
    console.print(f"[green]demo finished[/green] in {time.perf_counter() - began:.0f} s; state lives in {home}")
    from serving.cli import users as cli_users

    # ends with the pages' URL and a sign-in token
    cli_users.print_demo_sign_in(home, data, extra_env=f"EXPANSION_EXPANSION_TARGET_ARR_QUARTER={target:.0f} ")


def _plan_top_plays(crm_db: Path, cfg: Settings, data: Path, limit: int) -> tuple[int, int]:
    """Log the recommended play of the top accounts as planned (what a CSM does first on Monday); (logged, already were)."""
    import pandas as pd
    import sqlalchemy as sa

    from serving.store.engine import sql_engine
    from serving.web.store import WebStore

    engine = sql_engine(f"sqlite:///{crm_db}", what="CRM sink", wal=False)
    with engine.connect() as conn:
        rows = conn.execute(sa.text(
            "SELECT account_id, recommended_play FROM account_scores WHERE recommended_play IS NOT NULL "
            "ORDER BY expected_expansion_usd DESC NULLS LAST, readiness_score DESC LIMIT :limit"), {"limit": limit}
        ).mappings().all()
    engine.dispose()
    accounts = pd.read_parquet(data / "accounts.parquet", columns=["account_id", "csm_owner"])
    owner = dict(zip(accounts["account_id"], accounts["csm_owner"].astype(object).where(accounts["csm_owner"].notna(), None)))
    store, now = WebStore(cfg), dt.datetime.now(dt.UTC)  # the play log lives in the product store
    done = {p["play"] for r in rows for p in store.plays_for(r["account_id"]) if p["logged_by"] == "demo-leader"}
    fresh = [r for r in rows if r["recommended_play"] not in done]
    for r in fresh:
        store.log_play(r["account_id"], owner.get(r["account_id"]), "demo-leader", r["recommended_play"], "planned",
                       "planned by the demo from the recommended play", now)
    return len(fresh), len(rows) - len(fresh)


def _quarterly_target(data: Path, as_of: dt.date) -> float:
    """A quarterly expansion ARR target for the demo: 10 % above the average of the last four complete quarters."""
    from features.io import open_data
    from features.metrics import MetricTables, period_metrics

    source = open_data(data)
    try:
        quarters = period_metrics(MetricTables.from_source(source), "quarter", None, _months_before(as_of, 14), as_of)
    finally:
        source.close()
    recent = quarters.tail(4)
    return round(1.1 * 12 * float(recent["expansion_mrr"].mean()), -3) if len(recent) else 0.0


def _newest_snapshot(frame_path: Path, out: Path) -> None:
    import pandas as pd

    frame = pd.read_parquet(frame_path)
    frame[frame["as_of"] == frame["as_of"].max()].to_parquet(out, index=False)


def register(app: typer.Typer) -> None:
    app.command("demo")(demo)
