"""The stale expansion-opportunity rule over the optional pipeline tables, point in time."""

from __future__ import annotations

import datetime as dt

import pandas as pd
import pytest

from features.io import open_data
from serving.alerts.rules import active_rules, in_condition, load_rules
from serving.alerts.signals import usable_tables, with_signals

ts = pd.Timestamp


def pipeline(tables: dict[str, pd.DataFrame]) -> None:
    tables["opportunities"] = pd.DataFrame({
        "opportunity_id": ["O1", "O2", "O3"],
        "account_id": ["A1", "A4", "A3"],
        "kind": ["upsell", "renewal", "expansion"],
        "amount": [6000.0, 1200.0, 3000.0],
        "created_at": [ts("2025-01-05 09:00"), ts("2024-06-01"), ts("2024-12-20")],
        "expected_close_date": [dt.date(2025, 5, 1), None, dt.date(2025, 3, 1)],
        "closed_at": [None, None, ts("2025-03-15 12:00")],
        "outcome": ["open", "open", "won"],
        "owner": ["kim", "lee", "kim"],
    })
    tables["opportunity_stages"] = pd.DataFrame({
        "opportunity_id": ["O1", "O1", "O1", "O2", "O3"],
        "stage": ["identified", "qualified", "proposal", "identified", "engaged"],
        "entered_at": [ts("2025-01-05 09:00"), ts("2025-02-20 10:00"), ts("2025-04-10 10:00"), ts("2024-06-01"),
                       ts("2025-01-01")],
    })


def frame_at(*days: dt.date) -> pd.DataFrame:
    return pd.DataFrame({"account_id": pd.array(["A1", "A3", "A4"] * len(days), dtype="string"),
                         "as_of": pd.to_datetime([d for d in days for _ in range(3)])})


def test_an_open_expansion_deal_idle_over_30_days_in_its_stage_is_in_the_condition(tiny_company) -> None:
    source = open_data(tiny_company(pipeline))
    try:
        rules, inactive = active_rules(load_rules(), usable_tables(source))
        assert "stale_expansion_opportunity" in {r.name for r in rules}
        frame = with_signals(frame_at(dt.date(2025, 3, 1), dt.date(2025, 3, 31)), source)
    finally:
        source.close()
    days = frame.set_index(["account_id", frame["as_of"].dt.date])["open_expansion_days_in_stage"]
    # O1 entered 'qualified' on 2025-02-20 (its April stage is in the future of both snapshots)
    assert days[("A1", dt.date(2025, 3, 1))] == 9 and days[("A1", dt.date(2025, 3, 31))] == 39
    # O3 was open in its stage since 2025-01-01 on March 1st, won on March 15th; O2 is a renewal
    assert days[("A3", dt.date(2025, 3, 1))] == 59 and pd.isna(days[("A3", dt.date(2025, 3, 31))])
    assert pd.isna(days[("A4", dt.date(2025, 3, 1))])
    stale = [r for r in rules if r.name == "stale_expansion_opportunity"]
    hits = in_condition(tuple(stale), frame)
    assert set(zip(hits["account_id"], hits["as_of"].dt.date)) == {("A1", dt.date(2025, 3, 31)), ("A3", dt.date(2025, 3, 1))}
    amount = frame.set_index(["account_id", frame["as_of"].dt.date])["open_expansion_amount"]
    assert amount[("A1", dt.date(2025, 3, 31))] == 6000.0


def test_without_pipeline_rows_the_rule_is_inactive(tiny_company) -> None:
    def empty(tables: dict[str, pd.DataFrame]) -> None:
        pipeline(tables)
        tables["opportunities"] = tables["opportunities"].iloc[0:0]

    for edit in (None, empty):
        source = open_data(tiny_company(edit))
        try:
            _, inactive = active_rules(load_rules(), usable_tables(source))
        finally:
            source.close()
        assert "opportunities" in inactive["stale_expansion_opportunity"]


def test_usage_against_the_prior_90_day_mean(tiny_company) -> None:
    def a2_still_a_customer(tables: dict[str, pd.DataFrame]) -> None:
        # the signal is a registered feature, computed for customers: A2 keeps paying after its usage stops
        subs = tables["subscriptions"]
        subs.loc[subs["account_id"] == "A2", ["valid_to", "renewal_date"]] = [None, dt.date(2025, 12, 31)]

    source = open_data(tiny_company(a2_still_a_customer))
    try:
        frame = with_signals(pd.DataFrame({"account_id": pd.array(["A2", "A4"], dtype="string"),
                                           "as_of": pd.to_datetime(["2025-05-10", "2025-05-10"])}), source)
    finally:
        source.close()
    change = dict(zip(frame["account_id"], frame["usage_vs_prior_90d_pct"]))
    # A2 used 3 events a day until 2025-04-19: 9 days (27 events) in the last 30, 270 in the 90 before (90 a month)
    assert change["A2"] == pytest.approx(100 * (27 / 90 - 1))
    assert change["A4"] == pytest.approx(0.0)  # flat usage
