"""Tenure views of expansion: penetration curves, time to first expansion, frequency, kinds, cohort NRR."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from features import cohorts
from features.io import open_data
from features.metrics import MetricTables
from features.movements import movements

D = dt.date


def company(tmp_path: Path, subs: list[tuple], since: dict[str, dt.date]) -> MetricTables:
    """Accounts (all smb/direct except ``b`` enterprise) and subscriptions (account, product, plan, seats, mrr, from, to)."""
    accounts = pd.DataFrame({
        "account_id": list(since), "name": list(since), "industry": "software", "region": "emea", "employees": 50,
        "segment": ["enterprise" if a == "b" else "smb" for a in since], "acquisition_channel": "direct",
        "customer_since": list(since.values()), "csm_owner": "ana", "fiscal_year_start_month": 1,
    })
    frame = pd.DataFrame(subs, columns=["account_id", "product_id", "plan", "seats", "mrr", "valid_from", "valid_to"])
    frame["usage_limit"] = 1000.0
    frame["renewal_date"] = frame["valid_from"]
    accounts.to_parquet(tmp_path / "accounts.parquet", index=False)
    frame.to_parquet(tmp_path / "subscriptions.parquet", index=False)
    return MetricTables.from_source(open_data(tmp_path))


@pytest.fixture
def four_accounts(tmp_path: Path) -> MetricTables:
    # a: seats at ~2 months, upgrade at ~5; b: cross-sell at ~12.5; c: never expands; d: signs up late (censored).
    subs = [
        ("a", "core", "s", 5, 500.0, D(2024, 1, 1), D(2024, 3, 1)),
        ("a", "core", "s", 8, 800.0, D(2024, 3, 1), D(2024, 6, 1)),
        ("a", "core", "m", 8, 1200.0, D(2024, 6, 1), None),
        ("b", "core", "s", 10, 1000.0, D(2024, 1, 1), None),
        ("b", "addon", "x", 2, 100.0, D(2025, 1, 15), None),
        ("c", "core", "s", 3, 300.0, D(2024, 1, 1), D(2024, 7, 1)),
        ("d", "core", "s", 3, 300.0, D(2025, 10, 1), D(2025, 11, 1)),
        ("d", "core", "s", 4, 400.0, D(2025, 11, 1), None),
    ]
    since = {"a": D(2024, 1, 1), "b": D(2024, 1, 1), "c": D(2024, 1, 1), "d": D(2025, 10, 1)}
    return company(tmp_path, subs, since)


AS_OF = D(2025, 12, 31)


def test_curve_counts_accounts_only_while_observed(four_accounts: MetricTables) -> None:
    curve = cohorts.cohort_expansion_curve(four_accounts, AS_OF, by=None).set_index("months")
    # a, b, c are observed for 24 months: plain shares. d (3 months observed) expanded in month 2.
    assert curve.loc[0, "expanded_pct"] == 0.0
    assert curve.loc[2, "expanded_pct"] == pytest.approx(100 - 100 * (3 / 4) * (2 / 3))  # a and d
    assert curve.loc[3, "accounts"] == 3
    assert curve.loc[6, "expanded_pct"] == pytest.approx(curve.loc[2, "expanded_pct"])
    assert curve.loc[13, "expanded_pct"] == pytest.approx(100 - 100 * (3 / 4) * (2 / 3) * (1 / 2))
    assert curve["expanded_pct"].is_monotonic_increasing


def test_curve_equals_plain_share_when_nobody_is_censored(four_accounts: MetricTables) -> None:
    curve = cohorts.cohort_expansion_curve(four_accounts, AS_OF, by="cohort")
    q1 = curve[curve["group"] == "2024-Q1"].set_index("months")
    assert list(q1.loc[[1, 2, 12, 13], "expanded_pct"].round(6)) == pytest.approx([0.0, 100 / 3, 100 / 3, 200 / 3])


def test_time_to_first_expansion_and_frequency(four_accounts: MetricTables) -> None:
    ttfe = cohorts.time_to_first_expansion(four_accounts, AS_OF).iloc[0]
    assert ttfe["accounts"] == 4 and ttfe["expanded_accounts"] == 3
    assert ttfe["expansion_penetration_pct"] == 75.0
    assert ttfe["months_median"] == pytest.approx((D(2024, 3, 1) - D(2024, 1, 1)).days / cohorts.DAYS_PER_MONTH)
    assert ttfe["first_in_0-3_pct"] == pytest.approx(200 / 3)
    freq = cohorts.expansion_frequency(four_accounts, AS_OF).iloc[0]
    assert freq["expanded_none_pct"] == 25.0 and freq["expanded_once_pct"] == 50.0
    assert freq["expanded_2_to_3_pct"] == 25.0 and freq["expanded_4_plus_pct"] == 0.0


def test_expansion_by_kind_splits_by_group(four_accounts: MetricTables) -> None:
    kinds = cohorts.expansion_by_kind(four_accounts, D(2024, 1, 1), AS_OF, by="segment")
    got = {(r.group, r.expansion_kind): (r.expansions, r.avg_expansion_mrr) for r in kinds.itertuples()}
    assert got == {("smb", "seats"): (2, 200.0), ("smb", "plan_upgrade"): (1, 400.0),
                   ("enterprise", "cross_sell"): (1, 100.0)}


def test_cohort_nrr_by_age(four_accounts: MetricTables) -> None:
    nrr = cohorts.cohort_nrr(four_accounts, AS_OF, by="cohort")
    q1 = nrr[nrr["group"] == "2024-Q1"].set_index("months")
    assert q1.loc[0, "base_mrr"] == 1800.0
    assert q1.loc[2, "nrr_pct"] == pytest.approx(2100 / 1800 * 100)
    assert q1.loc[6, "nrr_pct"] == pytest.approx(2200 / 1800 * 100)  # c churned at the start of month 6
    assert q1.loc[12, "nrr_pct"] == pytest.approx(2300 / 1800 * 100)
    q4 = nrr[nrr["group"] == "2025-Q4"].set_index("months")
    assert list(q4.index) == [0, 1, 2]


def test_random_kinds_total_equals_expansion_movements(tmp_path: Path) -> None:
    rng = np.random.default_rng(3)
    subs, since = [], {}
    for i in range(30):
        a, day, seats = f"x{i}", D(2024, 1, 1) + dt.timedelta(days=int(rng.integers(0, 300))), int(rng.integers(1, 9))
        since[a] = day
        for _ in range(int(rng.integers(1, 6))):
            nxt = day + dt.timedelta(days=int(rng.integers(30, 120)))
            subs.append((a, "core", "s", seats, 50.0 * seats, day, nxt))
            day, seats = nxt, max(1, seats + int(rng.integers(-2, 4)))
        subs.append((a, "core", "s", seats, 50.0 * seats, day, None))
    tables = company(tmp_path, subs, since)
    kinds = cohorts.expansion_by_kind(tables, D(2024, 1, 1), AS_OF)
    m = movements(tables.subscriptions).execute()
    assert kinds["expansion_mrr"].sum() == pytest.approx(m.loc[m["movement"] == "expansion", "mrr_delta"].sum())
    assert set(kinds["expansion_kind"]) == {"seats"}
