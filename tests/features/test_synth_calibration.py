"""The generated company lands in published SaaS benchmark ranges, measured with the product's own metrics.

Ranges are the ones the generator is specified to meet (segment NRR, monthly logo churn,
expansion rate, two-year expansion penetration, first expansions in months 8-16), and
leading indicators must lead expansions without deciding them.
"""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from sklearn.metrics import roc_auc_score

from features.cohorts import account_expansion_history, cohort_expansion_curve
from features.io import open_data
from features.metrics import MetricTables, period_metrics
from features.movements import movements
from features.synth import generate

AS_OF = dt.date(2025, 6, 30)
LAST_12M = dt.date(2024, 7, 1)
NRR_RANGE = {"smb": (80, 105), "mid_market": (98, 113), "enterprise": (108, 135)}
LOGO_CHURN_MONTHLY = {"smb": (2, 6), "mid_market": (0.5, 3), "enterprise": (0, 1)}


@pytest.fixture(scope="module")
def source(tmp_path_factory: pytest.TempPathFactory):
    out: Path = tmp_path_factory.mktemp("synth_calibration")
    generate(out, accounts=3000, months=24, seed=7, as_of=AS_OF)
    src = open_data(out)
    yield src
    src.close()


@pytest.fixture(scope="module")
def tables(source) -> MetricTables:
    return MetricTables.from_source(source)


@pytest.mark.parametrize("segment", list(NRR_RANGE))
def test_trailing_twelve_month_nrr_by_segment(tables: MetricTables, segment: str) -> None:
    ttm = period_metrics(tables, "ttm", by="segment", start=LAST_12M, end=AS_OF).set_index("group")
    lo, hi = NRR_RANGE[segment]
    assert lo <= ttm.loc[segment, "nrr_pct"] <= hi


@pytest.mark.parametrize("segment", list(LOGO_CHURN_MONTHLY))
def test_monthly_logo_churn_by_segment(tables: MetricTables, segment: str) -> None:
    months = period_metrics(tables, "month", by="segment", start=LAST_12M, end=AS_OF)
    lo, hi = LOGO_CHURN_MONTHLY[segment]
    assert lo <= months.loc[months["group"] == segment, "logo_churn_pct"].mean() <= hi


def test_enterprise_expands_more_and_churns_less_than_smb(tables: MetricTables) -> None:
    ttm = period_metrics(tables, "ttm", by="segment", start=LAST_12M, end=AS_OF).set_index("group")
    assert ttm.loc["enterprise", "nrr_pct"] > ttm.loc["smb", "nrr_pct"]
    assert ttm.loc["enterprise", "logo_churn_pct"] < ttm.loc["smb", "logo_churn_pct"]


def test_monthly_expansion_rate(tables: MetricTables) -> None:
    months = period_metrics(tables, "month", start=LAST_12M, end=AS_OF)
    assert 1.5 <= months["expansion_rate_pct"].mean() <= 5.0


def test_expansion_penetration_within_two_years(tables: MetricTables) -> None:
    curve = cohort_expansion_curve(tables, AS_OF, by=None, max_months=24)
    assert 25 <= curve.loc[curve["months"] == 24, "expanded_pct"].iloc[0] <= 50


def test_first_expansions_concentrate_in_months_8_to_16(tables: MetricTables) -> None:
    """The monthly hazard of a first expansion is highest in tenure months 8-16."""
    h = account_expansion_history(tables, AS_OF, None).execute()
    first = h["months_to_first_expansion"]
    hazard = []
    for k in range(24):
        at_risk = (h["observed_months"] >= k + 1) & (first.isna() | (first >= k))
        hazard.append(((first >= k) & (first < k + 1) & at_risk).sum() / at_risk.sum())
    hazard = np.array(hazard)
    assert hazard[8:17].mean() > 1.3 * hazard[:8].mean()
    assert hazard[8:17].mean() > 1.3 * hazard[17:24].mean()


def test_industry_and_channel_effects(source) -> None:
    """Software/healthcare/professional services outgrow retail/education/nonprofit; partners expand less."""
    growth = source.con.execute(f"""
        WITH mrr AS (
            SELECT account_id,
                   sum(mrr) FILTER (WHERE valid_from <= DATE '{LAST_12M}' AND coalesce(valid_to, DATE '9999-12-31') > DATE '{LAST_12M}') AS start_mrr,
                   sum(mrr) FILTER (WHERE valid_from <= DATE '{AS_OF}' AND valid_to IS NULL) AS end_mrr
            FROM subscriptions GROUP BY 1)
        SELECT a.industry IN ('software', 'healthcare', 'professional services') AS high,
               a.industry IN ('retail', 'education', 'nonprofit') AS low,
               a.acquisition_channel, sum(coalesce(end_mrr, 0)) / sum(start_mrr) AS nrr
        FROM mrr JOIN accounts a USING (account_id) WHERE start_mrr > 0 GROUP BY ALL
    """).df()
    by_industry = growth.groupby(["high", "low"]).apply(lambda g: g["nrr"].mean(), include_groups=False)
    assert by_industry.loc[(True, False)] > by_industry.loc[(False, True)]
    by_channel = growth.groupby("acquisition_channel")["nrr"].mean()
    assert by_channel["partner"] < by_channel["direct"]


def _snapshots(source, tables: MetricTables) -> pd.DataFrame:
    """Month-end rows of paying accounts with 30-day usage growth, quota use and a 90-day expansion label."""
    m = movements(tables.subscriptions, tables.products)
    m = m.filter((m.movement == "expansion") & (m.expansion_kind != "price")).select("account_id", "date").execute()
    source.con.register("expansions_tmp", m)
    ends = pd.date_range("2023-10-31", "2025-03-31", freq="ME")
    source.con.register("snap_tmp", pd.DataFrame({"t": ends.date}))
    return source.con.execute("""
        WITH core AS (
            SELECT s.account_id, p.t, s.usage_limit FROM subscriptions s JOIN snap_tmp p
              ON s.product_id = 'core' AND s.valid_from <= p.t AND coalesce(s.valid_to, DATE '9999-12-31') > p.t),
        use AS (
            SELECT c.account_id, c.t, c.usage_limit,
                   sum(u.events) FILTER (WHERE u.date > c.t - 30) AS e30,
                   sum(u.events) FILTER (WHERE u.date <= c.t - 30) AS e_prev
            FROM core c JOIN usage_daily u ON u.account_id = c.account_id AND u.date > c.t - 60 AND u.date <= c.t
            GROUP BY ALL)
        SELECT account_id, t, coalesce(e30, 0) AS e30, coalesce(e_prev, 0) AS e_prev,
               (coalesce(e30, 0) - coalesce(e_prev, 0)) / (coalesce(e_prev, 0) + 1) * 100 AS growth_pct,
               coalesce(e30, 0) / usage_limit * 100 AS quota_pct,
               EXISTS (SELECT 1 FROM expansions_tmp x WHERE x.account_id = use.account_id
                       AND x.date > use.t AND x.date <= use.t + 90) AS expanded
        FROM use
    """).df()


def test_leading_indicators_lead_but_do_not_decide(source, tables: MetricTables) -> None:
    snap = _snapshots(source, tables)
    snap = snap[snap["e_prev"] > 0]  # growth needs a previous month of usage (new accounts have none)
    y = snap["expanded"].astype(int)
    assert 0.02 < y.mean() < 0.4
    limited = snap["quota_pct"].notna()
    for signal, rows in (("growth_pct", snap.index == snap.index), ("quota_pct", limited)):
        x, yy = snap.loc[rows, signal], y[rows]
        assert x[yy == 1].mean() > x[yy == 0].mean(), signal
        assert 0.5 < roc_auc_score(yy, x) < 0.9, signal
