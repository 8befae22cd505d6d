"""The synthetic company meets the contract, is deterministic and behaves like a subscription business."""

from __future__ import annotations

import datetime as dt
import hashlib
from pathlib import Path

import pyarrow.parquet as pq
import pytest

from features.contract import TABLES
from features.io import open_data
from features.synth import generate
from features.synth.writer import contract_schema
from features.validate import validate

AS_OF = dt.date(2025, 6, 30)
WINDOW_START = dt.date(2023, 7, 1)


@pytest.fixture(scope="module")
def company(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("synth")
    generate(out, accounts=3000, months=24, seed=7, as_of=AS_OF)
    return out


@pytest.fixture(scope="module")
def con(company: Path):
    source = open_data(company)
    yield source.con
    source.close()


def _digests(folder: Path) -> dict[str, str]:
    return {p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in sorted(folder.glob("*.parquet"))}


def test_output_passes_validation(company: Path) -> None:
    source = open_data(company)
    try:
        report = validate(source, AS_OF)
    finally:
        source.close()
    assert report.ok, [str(v) for v in report.violations]
    assert not report.absent_optional


def test_every_table_has_the_contract_schema(company: Path) -> None:
    for name in TABLES:
        schema = pq.read_schema(company / f"{name}.parquet")
        assert schema.names == contract_schema(name).names, name
        assert [f.type for f in schema] == [f.type for f in contract_schema(name)], name


def test_same_seed_same_bytes_other_seed_differs(tmp_path: Path) -> None:
    rows = generate(tmp_path / "a", accounts=400, months=6, seed=3, as_of=AS_OF)
    generate(tmp_path / "b", accounts=400, months=6, seed=3, as_of=AS_OF)
    generate(tmp_path / "c", accounts=400, months=6, seed=4, as_of=AS_OF)
    a, b, c = (_digests(tmp_path / x) for x in "abc")
    assert a == b and len(a) == len(TABLES)
    assert a["usage_daily.parquet"] != c["usage_daily.parquet"]
    assert a["subscriptions.parquet"] != c["subscriptions.parquet"]
    assert rows["accounts"] == 400


def test_accounts_do_not_depend_on_how_many_are_generated(tmp_path: Path) -> None:
    generate(tmp_path / "small", accounts=1000, months=6, seed=5, as_of=AS_OF)
    generate(tmp_path / "large", accounts=1300, months=6, seed=5, as_of=AS_OF)
    small = pq.read_table(tmp_path / "small" / "subscriptions.parquet")
    large = pq.read_table(tmp_path / "large" / "subscriptions.parquet")
    assert large.slice(0, small.num_rows).equals(small)


def test_generate_refuses_missing_as_of(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="as_of"):
        generate(tmp_path, accounts=10, months=3, seed=1, as_of=None)


def test_account_count_and_segments(con) -> None:
    n = con.execute("SELECT count(*) FROM accounts").fetchone()[0]
    assert n == 3000
    alive = con.execute(f"""
        SELECT count(DISTINCT account_id) FROM subscriptions
        WHERE valid_from <= DATE '{AS_OF}' AND coalesce(valid_to, DATE '9999-12-31') > DATE '{WINDOW_START}'
    """).fetchone()[0]
    assert alive == n  # every account exists at some time in the window
    shares = dict(con.execute("SELECT segment, count(*) / 3000 FROM accounts GROUP BY 1").fetchall())
    assert shares["smb"] > shares["mid_market"] > shares["enterprise"] > 0.05
    before = con.execute(f"SELECT avg((customer_since < DATE '{WINDOW_START}')::int) FROM accounts").fetchone()[0]
    assert 0.35 < before < 0.8
    oldest = con.execute("SELECT min(customer_since) FROM accounts").fetchone()[0]
    assert oldest < dt.date(2021, 7, 1)


def test_subscriptions_are_a_type2_history(con) -> None:
    gaps = con.execute("""
        WITH o AS (
            SELECT *, lead(valid_from) OVER (PARTITION BY account_id, product_id ORDER BY valid_from) AS next_from
            FROM subscriptions)
        SELECT count(*) FILTER (WHERE next_from IS NOT NULL AND valid_to IS NULL),
               count(*) FILTER (WHERE valid_to IS NOT NULL AND valid_to > next_from),
               count(*) FILTER (WHERE renewal_date <= valid_from)
        FROM o
    """).fetchone()
    assert gaps == (0, 0, 0)
    # mrr = seats x list price x a discount or uplift factor within a sane band
    ratio = con.execute("""
        SELECT min(s.mrr / (s.seats * p.list_price_per_seat)), max(s.mrr / (s.seats * p.list_price_per_seat))
        FROM subscriptions s JOIN products p USING (product_id, plan) WHERE s.seats > 0
    """).fetchone()
    assert 0.6 < ratio[0] and ratio[1] < 1.6


def test_catalog_has_tiers_price_steps_and_gated_api(con) -> None:
    steps = con.execute("""
        SELECT product_id, list(list_price_per_seat ORDER BY tier_rank) FROM products GROUP BY 1
    """).fetchall()
    assert len(steps) >= 3
    for product, prices in steps:
        assert len(prices) == 3, product
        assert all(2.0 <= b / a <= 3.0 for a, b in zip(prices, prices[1:])), product
    api_tiers = con.execute("""
        SELECT min(p.tier_rank) FROM plan_features f JOIN products p USING (product_id, plan)
        WHERE f.feature_key ILIKE '%api%' GROUP BY f.product_id
    """).fetchall()
    assert api_tiers and all(t >= 2 for (t,) in api_tiers)
    breadth = con.execute("""
        SELECT p.tier_rank, count(*) FROM plan_features f JOIN products p USING (product_id, plan)
        WHERE f.product_id = 'core' GROUP BY 1 ORDER BY 1
    """).fetchall()
    assert [n for _, n in breadth] == sorted(n for _, n in breadth) and breadth[0][1] < breadth[-1][1]


def test_usage_volume_window_and_weekly_pattern(con) -> None:
    first, last = con.execute("SELECT min(date), max(date) FROM usage_daily").fetchone()
    assert first >= WINDOW_START and last <= AS_OF
    per_account = dict(con.execute("""
        SELECT a.segment, count(*) / count(DISTINCT a.account_id)
        FROM accounts a LEFT JOIN usage_daily u USING (account_id) GROUP BY 1
    """).fetchall())
    overall = con.execute("SELECT (SELECT count(*) FROM usage_daily) / (SELECT count(*) FROM accounts)").fetchone()[0]
    assert 1000 <= overall <= 2000
    assert per_account["enterprise"] > per_account["mid_market"] > per_account["smb"]
    weekday, weekend = con.execute("""
        SELECT avg(events) FILTER (WHERE isodow(date) <= 5) * 5, avg(events) FILTER (WHERE isodow(date) > 5) * 2
        FROM (SELECT date, sum(events) AS events FROM usage_daily GROUP BY 1)
    """).fetchone()
    assert weekday > 2 * weekend


def test_no_usage_or_engagement_outside_a_paid_period(con) -> None:
    """Usage and touches happen only while the account has a live subscription."""
    for table, column in (("usage_daily", "date"), ("support_tickets", "created_at"), ("activities", "occurred_at")):
        stray = con.execute(f"""
            SELECT count(*) FROM {table} x WHERE NOT EXISTS (
                SELECT 1 FROM subscriptions s WHERE s.account_id = x.account_id
                  AND s.valid_from <= CAST(x.{column} AS DATE)
                  AND (s.valid_to IS NULL OR CAST(x.{column} AS DATE) < s.valid_to))
        """).fetchone()[0]
        assert stray == 0, table


def test_gated_features_are_trialled(con) -> None:
    """Some accounts use a feature their current plan does not unlock (a trial of the next tier)."""
    trials = con.execute(f"""
        WITH plan_now AS (
            SELECT account_id, plan FROM subscriptions
            WHERE product_id = 'core' AND valid_from <= DATE '{AS_OF}' AND valid_to IS NULL),
        used AS (SELECT DISTINCT account_id, feature_key FROM usage_daily
                 WHERE date > DATE '{AS_OF}' - INTERVAL 30 DAY AND feature_key IN
                       (SELECT feature_key FROM plan_features WHERE product_id = 'core'))
        SELECT count(DISTINCT u.account_id) FROM used u JOIN plan_now p USING (account_id)
        WHERE u.feature_key NOT IN (SELECT feature_key FROM plan_features f WHERE f.plan = p.plan)
    """).fetchone()[0]
    assert trials > 0


def test_engagement_tables_are_plausible(con) -> None:
    nps = con.execute("SELECT min(score), max(score), count(DISTINCT respondent_role) FROM surveys WHERE kind = 'nps'").fetchone()
    assert nps[0] >= 0 and nps[1] <= 10 and nps[2] == 3
    kinds = {k for (k,) in con.execute("SELECT DISTINCT kind FROM activities").fetchall()}
    assert kinds == {"meeting", "qbr", "email", "call", "training"}
    statuses = dict(con.execute("SELECT status, count(*) FROM payments GROUP BY 1").fetchall())
    assert statuses["paid"] > statuses["late"] > statuses["failed"] > 0
    unresolved_late = con.execute(f"SELECT count(*) FROM support_tickets WHERE resolved_at > TIMESTAMP '{AS_OF} 23:59:59.999999'").fetchone()[0]
    assert unresolved_late == 0


def test_opportunities_follow_the_subscription_history(company: Path, con) -> None:
    """Most expansions are preceded by a won deal closing that day; some arrive with none; deals are lost or stall."""
    from features.movements import movements

    source = open_data(company)
    try:
        moves = movements(source.ibis().table("subscriptions")).execute()
    finally:
        source.close()
    exp = moves.loc[(moves.movement == "expansion") & (moves.expansion_kind != "price")
                    & (moves.date >= pd_ts(WINDOW_START))]
    won = con.execute("SELECT account_id, CAST(closed_at AS DATE) AS day FROM opportunities WHERE outcome = 'won'").df()
    keys = set(zip(exp.account_id, exp.date.dt.date))
    won_keys = set(zip(won.account_id, won.day.dt.date))
    assert won_keys <= keys, "every won deal closes on a day its account expanded"
    share = len(keys & won_keys) / len(keys)
    assert 0.6 < share < 0.95, share  # most expansions, not all, had a deal
    outcomes = dict(con.execute("SELECT outcome, count(*) FROM opportunities GROUP BY 1").fetchall())
    assert outcomes["lost"] > 0.2 * outcomes["won"] and outcomes["open"] > 0
    stalled = con.execute("""
        SELECT count(DISTINCT opportunity_id) FROM (
            SELECT opportunity_id, date_diff('day', entered_at,
                   lead(entered_at) OVER (PARTITION BY opportunity_id ORDER BY entered_at)) AS days
            FROM opportunity_stages) WHERE days > 30""").fetchone()[0]
    assert stalled > 0


def test_stages_run_in_the_default_order(con) -> None:
    from features.config import Settings

    order = {s: i for i, s in enumerate(Settings(_env_file=None).opportunity_stages)}
    stages = con.execute("SELECT opportunity_id, stage, entered_at FROM opportunity_stages").df()
    stages["rank"] = stages["stage"].map(order)
    assert stages["rank"].notna().all()
    ordered = stages.sort_values(["opportunity_id", "entered_at", "rank"])
    assert (ordered.groupby("opportunity_id")["rank"].diff().dropna() > 0).all()
    open_ids = set(con.execute("SELECT opportunity_id FROM opportunities WHERE outcome = 'open'").df().opportunity_id)
    closing = stages.loc[stages.stage.isin(["closed_won", "closed_lost"]), "opportunity_id"]
    assert not (set(closing) & open_ids)


def pd_ts(day: dt.date):
    import pandas as pd

    return pd.Timestamp(day)
