"""NRR, GRR and rates: the worked examples, and agreement with plain pandas on a random company."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from features.io import open_data
from features.metrics import (
    MetricTables,
    benchmark_band,
    grr_pct,
    nrr_pct,
    period_bounds,
    period_metrics,
    rate_pct,
)

D = dt.date
AS_OF = D(2025, 12, 31)


def random_company(seed: int, accounts: int = 120, months: int = 24) -> dict[str, pd.DataFrame]:
    """Accounts with type-2 subscription histories: seats, upgrades, add-ons, price rises, contraction, churn."""
    rng = np.random.default_rng(seed)
    first = D(2024, 1, 1)
    acc, subs = [], []
    for i in range(accounts):
        since = first + dt.timedelta(days=int(rng.integers(0, months * 30 - 60)))
        acc.append({
            "account_id": f"acc{i:04d}", "name": f"Account {i}", "segment": str(rng.choice(["smb", "mid_market", "enterprise"])),
            "industry": str(rng.choice(["software", "retail", "health"])), "region": "emea", "employees": int(rng.integers(5, 5000)),
            "acquisition_channel": str(rng.choice(["direct", "partner", "self_serve"])), "customer_since": since,
            "csm_owner": str(rng.choice(["ana", "ben"])), "fiscal_year_start_month": int(rng.integers(1, 13)),
        })
        products = {"core": (["starter", "pro", "enterprise"], 0, int(rng.integers(2, 40)), since)}
        day = since
        while True:
            day = day + dt.timedelta(days=int(rng.integers(20, 150)))
            if day > AS_OF:
                break
            event = rng.choice(["seats", "upgrade", "addon", "price", "shrink", "churn", "noop"],
                               p=[0.25, 0.1, 0.1, 0.05, 0.15, 0.05, 0.3])
            if event == "addon" and "addon" not in products:
                products["addon"] = (["basic", "plus"], 0, int(rng.integers(1, 10)), day)
                continue
            name = str(rng.choice(sorted(products)))
            plans, tier, seats, started = products[name]
            subs.append(_row(i, name, plans[tier], tier, seats, started, day))
            if event == "churn":
                products.pop(name)
                if not products:
                    break
                continue
            tier = min(tier + 1, len(plans) - 1) if event == "upgrade" else tier
            seats = seats + int(rng.integers(1, 6)) if event == "seats" else seats
            seats = max(1, seats - int(rng.integers(1, 4))) if event == "shrink" else seats
            products[name] = (plans, tier, seats, day)
        for name, (plans, tier, seats, started) in products.items():
            subs.append(_row(i, name, plans[tier], tier, seats, started, None))
    usage = pd.DataFrame({"account_id": ["acc0000"], "date": [first], "feature_key": ["reports"],
                          "events": [3], "active_users": [1]})
    return {"accounts": pd.DataFrame(acc), "subscriptions": pd.DataFrame(subs), "usage_daily": usage}


def _row(i: int, product: str, plan: str, tier: int, seats: int, start: dt.date, end: dt.date | None) -> dict:
    price = (40.0 if product == "core" else 15.0) * (1 + 0.5 * tier)
    return {"account_id": f"acc{i:04d}", "product_id": product, "plan": plan, "seats": seats,
            "mrr": round(price * seats, 2), "usage_limit": 1000.0 * seats, "valid_from": start, "valid_to": end,
            "renewal_date": start + dt.timedelta(days=365)}


def write(tables: dict[str, pd.DataFrame], folder: Path) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    for name, frame in tables.items():
        frame.to_parquet(folder / f"{name}.parquet", index=False)
    return folder


@pytest.fixture(scope="module")
def company(tmp_path_factory: pytest.TempPathFactory) -> tuple[dict[str, pd.DataFrame], MetricTables]:
    tables = random_company(seed=7)
    source = open_data(write(tables, tmp_path_factory.mktemp("company")))
    return tables, MetricTables.from_source(source)


def mrr_on(subs: pd.DataFrame, day: dt.date) -> pd.Series:
    """Account MRR at the end of ``day``, straight from the periods."""
    live = subs[(subs["valid_from"] <= day) & (subs["valid_to"].isna() | (subs["valid_to"].map(lambda v: v is not None and v > day)))]
    return live.groupby("account_id")["mrr"].sum()


def test_worked_examples() -> None:
    assert round(nrr_pct(10_000_000, 2_000_000, 500_000, 1_000_000)) == 105
    assert round(nrr_pct(100_000, 20_000, 2_000, 5_000)) == 113
    assert round(rate_pct(23_000, 487_000), 1) == 4.7
    # The published example quotes 114 % (113.9); its own figures give 1,357 / 1,200 = 113.08 %.
    assert round(nrr_pct(1_200_000, 340_000, 68_000, 115_000), 2) == 113.08


def test_grr_excludes_expansion_and_is_capped() -> None:
    assert grr_pct(10_000_000, 500_000, 1_000_000) == 85.0
    assert grr_pct(100.0, 0.0, 0.0) == 100.0
    assert grr_pct(100.0, -10.0, 0.0) == 100.0


def test_zero_starting_mrr_is_an_error_naming_the_rule() -> None:
    with pytest.raises(ValueError, match="starting MRR must be > 0"):
        nrr_pct(0, 1, 0, 0)


@pytest.mark.parametrize(("nrr", "band"), [
    (135.0, "world_class"), (120.0, "world_class"), (119.9, "strong"), (100.0, "strong"),
    (99.99, "needs_improvement"), (90.0, "needs_improvement"), (89.9, "critical"), (None, None),
])
def test_benchmark_band(nrr: float | None, band: str | None) -> None:
    assert benchmark_band(nrr) == band


def test_period_bounds() -> None:
    assert period_bounds("quarter", D(2024, 2, 10), D(2024, 12, 30)) == [
        (D(2024, 4, 1), D(2024, 6, 30)), (D(2024, 7, 1), D(2024, 9, 30)),
    ]
    ttm = period_bounds("ttm", D(2024, 1, 1), D(2025, 2, 28))
    assert ttm == [(D(2024, 1, 1), D(2024, 12, 31)), (D(2024, 2, 1), D(2025, 1, 31)), (D(2024, 3, 1), D(2025, 2, 28))]
    assert len(period_bounds("month", D(2024, 1, 1), D(2024, 12, 31))) == 12
    with pytest.raises(ValueError, match="period must be one of"):
        period_bounds("week", D(2024, 1, 1), D(2024, 12, 31))


@pytest.mark.parametrize("period", ["month", "quarter", "ttm"])
def test_period_metrics_agree_with_account_mrr_at_both_ends(company, period: str) -> None:
    tables, metric_tables = company
    subs = tables["subscriptions"]
    got = period_metrics(metric_tables, period, start=D(2024, 1, 1), end=AS_OF)
    # the first period opens before the first subscription, so no account is active at its start
    assert len(got) == len(period_bounds(period, D(2024, 1, 1), AS_OF)) - 1
    for row in got.itertuples():
        opening = mrr_on(subs, row.period_start - dt.timedelta(days=1))
        opening = opening[opening > 0]
        closing = mrr_on(subs, row.period_end).reindex(opening.index, fill_value=0.0)
        assert row.accounts_start == len(opening)
        assert row.starting_mrr == pytest.approx(opening.sum())
        assert row.nrr_pct == pytest.approx(closing.sum() / opening.sum() * 100)
        assert row.grr_pct == pytest.approx(np.minimum(opening, closing).sum() / opening.sum() * 100)
        assert row.logo_churn_pct == pytest.approx((closing <= 0).mean() * 100)
        assert row.expansion_rate_pct == pytest.approx((closing - opening).clip(lower=0).sum() / opening.sum() * 100)
        assert row.nrr_band == benchmark_band(row.nrr_pct)


def test_groups_partition_the_total(company) -> None:
    _, metric_tables = company
    total = period_metrics(metric_tables, "quarter", start=D(2024, 1, 1), end=AS_OF)
    for by in ("segment", "industry", "channel", "cohort"):
        split = period_metrics(metric_tables, "quarter", by=by, start=D(2024, 1, 1), end=AS_OF)
        summed = split.groupby("period_start")[["starting_mrr", "expansion_mrr", "churned_mrr", "accounts_start"]].sum()
        assert np.allclose(summed.to_numpy(), total.set_index("period_start")[summed.columns].to_numpy()), by
    by_segment = period_metrics(metric_tables, "quarter", by="segment", start=D(2024, 1, 1), end=AS_OF)
    assert set(by_segment["group"]) <= {"smb", "mid_market", "enterprise"}


def test_nothing_after_the_end_date_moves_a_figure(company, tmp_path: Path) -> None:
    tables, metric_tables = company
    before = period_metrics(metric_tables, "month", start=D(2024, 1, 1), end=D(2025, 6, 30))
    later = tables["subscriptions"].copy()
    cut = D(2025, 7, 1)
    later.loc[later["valid_from"] >= cut, "mrr"] *= 3
    source = open_data(write({**tables, "subscriptions": later}, tmp_path))
    after = period_metrics(MetricTables.from_source(source), "month", start=D(2024, 1, 1), end=D(2025, 6, 30))
    pd.testing.assert_frame_equal(before, after)


def test_bad_grouping_names_the_allowed_values(company) -> None:
    with pytest.raises(ValueError, match="by must be one of segment, industry, channel, cohort"):
        period_metrics(company[1], "month", by="region", start=D(2024, 1, 1), end=AS_OF)


def test_generated_company_agrees_with_plain_pandas(tmp_path: Path) -> None:
    from features import synth

    as_of = D(2025, 12, 31)
    synth.generate(tmp_path, accounts=300, months=24, seed=11, as_of=as_of)
    source = open_data(tmp_path)
    subs = source.con.execute("SELECT * FROM subscriptions").df()
    for col in ("valid_from", "valid_to"):
        subs[col] = [None if pd.isna(v) else pd.Timestamp(v).date() for v in subs[col]]
    got = period_metrics(MetricTables.from_source(source), "quarter", start=D(2024, 1, 1), end=as_of)
    assert len(got) == 8
    for row in got.itertuples():
        opening = mrr_on(subs, row.period_start - dt.timedelta(days=1))
        opening = opening[opening > 0]
        closing = mrr_on(subs, row.period_end).reindex(opening.index, fill_value=0.0)
        assert row.starting_mrr == pytest.approx(opening.sum())
        assert row.nrr_pct == pytest.approx(closing.sum() / opening.sum() * 100)
        assert row.grr_pct == pytest.approx(np.minimum(opening, closing).sum() / opening.sum() * 100)
        assert row.logo_churn_pct == pytest.approx((closing <= 0).mean() * 100)
