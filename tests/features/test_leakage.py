"""Point in time: rows dated after as_of, added or altered in every table, change no feature at as_of."""

from __future__ import annotations

import datetime as dt

import pandas as pd
import pytest

from features.build import build_features
from features.config import Settings
from features.io import open_data
from features.labels import LABELS

AS_OF = dt.date(2025, 3, 31)
SNAPSHOTS = [dt.date(2025, 1, 31), dt.date(2025, 2, 28), AS_OF]


def _features(folder) -> pd.DataFrame:
    source = open_data(folder)
    try:
        # data_end is fixed so that only features, not label completeness, are compared.
        frame = build_features(source, SNAPSHOTS, Settings(_env_file=None), data_end=dt.date(2025, 7, 31))
    finally:
        source.close()
    return frame.drop(columns=list(LABELS)).set_index(["account_id", "as_of"]).sort_index()


def _future_edits(t: dict[str, pd.DataFrame]) -> None:
    ts, d = pd.Timestamp, dt.date
    after = AS_OF + dt.timedelta(days=1)
    u = t["usage_daily"]
    late = u["date"] > AS_OF
    u.loc[late, "events"] = u.loc[late, "events"] * 50
    u.loc[late, "active_users"] = 99
    t["usage_daily"] = pd.concat([u, pd.DataFrame({
        "account_id": ["A4", "A1"], "date": [after, after], "feature_key": ["automation", "brand_new"],
        "events": [10_000, 5], "active_users": [40, 1]})], ignore_index=True)
    s = t["subscriptions"]
    s.loc[(s.account_id == "A4") & s.valid_to.isna(), "valid_to"] = d(2025, 4, 10)  # a valid_to moved after as_of
    s.loc[(s.account_id == "A2"), "valid_to"] = d(2025, 5, 1)  # an end date moved, still after as_of
    t["subscriptions"] = pd.concat([s, pd.DataFrame([
        ("A4", "core", "pro", 40, 800.0, 5000.0, d(2025, 4, 10), None, d(2026, 4, 10)),
        ("A4", "addon", "basic", 40, 200.0, None, after, None, None),
    ], columns=s.columns)], ignore_index=True)
    tk = t["support_tickets"]
    tk.loc[tk.ticket_id == "T4", "resolved_at"] = ts("2025-06-01")  # resolution after as_of
    t["support_tickets"] = pd.concat([tk, pd.DataFrame({
        "ticket_id": ["T9"], "account_id": ["A1"], "created_at": [ts("2025-04-01 00:00")], "priority": ["urgent"],
        "category": ["outage"], "resolved_at": [ts("2025-04-02")], "csat": [1.0]})], ignore_index=True)
    t["surveys"] = pd.concat([t["surveys"], pd.DataFrame({
        "account_id": ["A1", "A3"], "responded_at": [ts("2025-04-01 00:00:01"), ts("2025-05-01")],
        "kind": ["nps", "csat"], "score": [0.0, 1.0], "respondent_role": ["executive", "user"]})], ignore_index=True)
    t["activities"] = pd.concat([t["activities"], pd.DataFrame({
        "account_id": ["A1", "A4"], "occurred_at": [ts("2025-04-01 00:00"), ts("2025-04-15")],
        "kind": ["qbr", "meeting"], "with_executive": [True, True]})], ignore_index=True)
    t["payments"] = pd.concat([t["payments"], pd.DataFrame({
        "invoice_id": ["I9"], "account_id": ["A4"], "due_date": [after], "amount": [100.0], "paid_at": [None],
        "status": ["failed"]})], ignore_index=True)
    t["accounts"] = pd.concat([t["accounts"], pd.DataFrame({
        "account_id": ["A5"], "name": ["Late"], "segment": ["smb"], "industry": ["software"], "region": ["na"],
        "employees": [10], "acquisition_channel": ["direct"], "customer_since": [after], "csm_owner": [None],
        "fiscal_year_start_month": [1]})], ignore_index=True)


def test_rows_after_as_of_change_no_feature(tiny_company):
    before, after = _features(tiny_company()), _features(tiny_company(_future_edits))
    assert len(before) > 0
    pd.testing.assert_frame_equal(before, after)


def test_the_edits_do_reach_later_snapshots(tiny_company):
    """Guards the leakage test itself: the same edits must move features at a later date."""
    def build(folder):
        source = open_data(folder)
        try:
            f = build_features(source, [dt.date(2025, 4, 30)], Settings(_env_file=None), data_end=dt.date(2025, 7, 31))
        finally:
            source.close()
        return f.set_index("account_id")
    before, after = build(tiny_company()), build(tiny_company(_future_edits))
    assert after.loc["A4", "events_30d"] > before.loc["A4", "events_30d"]
    assert after.loc["A4", "mrr"] == pytest.approx(1000.0)
    assert after.loc["A1", "tickets_30d"] == before.loc["A1", "tickets_30d"] + 1


# ---- the opportunity tables (pipeline features) ----

PIPELINE = ["open_expansion_opportunity", "open_expansion_amount_usd", "open_opportunity_stage_rank",
            "open_opportunity_days_in_stage", "opportunities_won_180d", "opportunities_lost_180d"]


def _with_pipeline(t: dict[str, pd.DataFrame]) -> None:
    """A1 has an expansion deal open at as_of (won after it); A3 lost one and A4 won one in the 180 days before."""
    ts, d = pd.Timestamp, dt.date
    t["opportunities"] = pd.DataFrame({
        "opportunity_id": ["P1", "P2", "P3", "P4"],
        "account_id": ["A1", "A3", "A4", "A1"],
        "kind": ["expansion", "upsell", "cross_sell", "renewal"],
        "amount": [600.0, 300.0, 1200.0, 1800.0],
        "created_at": [ts("2025-02-01 10:00"), ts("2024-11-01 09:00"), ts("2024-12-01 09:00"), ts("2025-01-01")],
        "expected_close_date": [d(2025, 5, 1), d(2025, 1, 31), None, d(2026, 1, 1)],
        "closed_at": [ts("2025-05-10 12:00"), ts("2025-01-15 12:00"), ts("2025-03-01 12:00"), None],
        "outcome": ["won", "lost", "won", "open"],
        "owner": ["kim", "kim", None, "kim"],
    })
    t["opportunity_stages"] = pd.DataFrame({
        "opportunity_id": ["P1", "P1", "P1", "P1", "P1", "P2", "P2", "P3", "P3", "P4"],
        "stage": ["prospecting", "qualification", "proposal", "negotiation", "closed_won", "prospecting", "closed_lost",
                  "negotiation", "closed_won", "prospecting"],
        "entered_at": [ts("2025-02-01 10:00"), ts("2025-02-20"), ts("2025-03-25 16:00"), ts("2025-04-15"),
                       ts("2025-05-10 12:00"), ts("2024-11-01 09:00"), ts("2025-01-15 12:00"), ts("2024-12-01 09:00"),
                       ts("2025-03-01 12:00"), ts("2025-01-01")],
    })


def _future_pipeline_edits(t: dict[str, pd.DataFrame]) -> None:
    ts = pd.Timestamp
    o = t["opportunities"]
    o.loc[o.opportunity_id == "P1", ["closed_at", "outcome"]] = [ts("2025-04-01 00:00"), "lost"]  # closes the next day
    o.loc[o.opportunity_id == "P4", ["closed_at", "outcome"]] = [ts("2025-06-01"), "won"]
    t["opportunities"] = pd.concat([o, pd.DataFrame({
        "opportunity_id": ["P9"], "account_id": ["A4"], "kind": ["expansion"], "amount": [5000.0],
        "created_at": [ts("2025-04-01 00:00")], "expected_close_date": [dt.date(2025, 4, 20)],
        "closed_at": [ts("2025-04-20")], "outcome": ["won"], "owner": ["lee"]})], ignore_index=True)
    s = t["opportunity_stages"]
    s = s.loc[~((s.opportunity_id == "P1") & (s.stage.isin(["negotiation", "closed_won"])))]
    t["opportunity_stages"] = pd.concat([s, pd.DataFrame({
        "opportunity_id": ["P1", "P9", "P9"], "stage": ["closed_lost", "negotiation", "closed_won"],
        "entered_at": [ts("2025-04-01 00:00"), ts("2025-04-01 00:00"), ts("2025-04-20")]})], ignore_index=True)


def test_pipeline_rows_after_as_of_change_no_feature(tiny_company):
    before = _features(tiny_company(_with_pipeline))
    after = _features(tiny_company(lambda t: (_with_pipeline(t), _future_pipeline_edits(t))))
    pd.testing.assert_frame_equal(before, after)


def test_pipeline_features_as_of(tiny_company):
    f = _features(tiny_company(_with_pipeline)).xs(pd.Timestamp(AS_OF), level="as_of")
    a1, a3, a4 = f.loc["A1"], f.loc["A3"], f.loc["A4"]
    assert (a1.open_expansion_opportunity, a1.open_expansion_amount_usd) == (1.0, 600.0)  # the renewal is not counted
    assert a1.open_opportunity_stage_rank == 4.0  # proposal, in the default order
    assert a1.open_opportunity_days_in_stage == 6.0  # entered 2025-03-25
    assert (a3.open_expansion_opportunity, a3.opportunities_lost_180d, a3.opportunities_won_180d) == (0.0, 1.0, 0.0)
    assert pd.isna(a3.open_opportunity_stage_rank)
    assert (a4.opportunities_won_180d, a4.opportunities_lost_180d) == (1.0, 0.0)


def test_pipeline_edits_do_reach_later_snapshots(tiny_company):
    def build(folder):
        source = open_data(folder)
        try:
            f = build_features(source, [dt.date(2025, 4, 30)], Settings(_env_file=None), data_end=dt.date(2025, 7, 31))
        finally:
            source.close()
        return f.set_index("account_id")

    before = build(tiny_company(_with_pipeline))
    after = build(tiny_company(lambda t: (_with_pipeline(t), _future_pipeline_edits(t))))
    assert before.loc["A1", "open_expansion_opportunity"] == 1.0 and after.loc["A1", "open_expansion_opportunity"] == 0.0
    assert after.loc["A1", "opportunities_lost_180d"] == 1.0
    assert after.loc["A4", "opportunities_won_180d"] == 2.0


def test_pipeline_features_are_null_without_the_tables(tiny_company):
    f = _features(tiny_company())
    assert f[PIPELINE].isna().all().all()


def _young_account(t: dict[str, pd.DataFrame]) -> None:
    """A6 became a customer 40 days before as_of and has used the product daily since its 11th day."""
    start = AS_OF - dt.timedelta(days=39)
    t["accounts"] = pd.concat([t["accounts"], pd.DataFrame({
        "account_id": ["A6"], "name": ["Young"], "segment": ["smb"], "industry": ["software"], "region": ["na"],
        "employees": [10], "acquisition_channel": ["direct"], "customer_since": [start], "csm_owner": [None],
        "fiscal_year_start_month": [1]})], ignore_index=True)
    s = t["subscriptions"]
    t["subscriptions"] = pd.concat([s, pd.DataFrame([
        ("A6", "core", "basic", 10, 100.0, 1000.0, start, None, dt.date(2026, 2, 20))], columns=s.columns)],
        ignore_index=True)
    days = [start + dt.timedelta(days=i) for i in range(10, 60)]  # on to 20 days after as_of
    t["usage_daily"] = pd.concat([t["usage_daily"], pd.DataFrame({
        "account_id": "A6", "date": days, "feature_key": "dash", "events": 10, "active_users": 2})], ignore_index=True)


def _young_account_future(t: dict[str, pd.DataFrame]) -> None:
    _young_account(t)
    _future_edits(t)
    s = t["subscriptions"]  # an upgrade after as_of: a later first subscription row never reaches back
    t["subscriptions"] = pd.concat([s, pd.DataFrame([
        ("A6", "addon", "basic", 10, 50.0, None, AS_OF + dt.timedelta(days=3), None, None)], columns=s.columns)],
        ignore_index=True)


def test_a_young_accounts_windows_start_on_its_first_day_and_ignore_later_rows(tiny_company):
    before, after = _features(tiny_company(_young_account)), _features(tiny_company(_young_account_future))
    pd.testing.assert_frame_equal(before, after)
    a6 = before.loc[("A6", pd.Timestamp(AS_OF))]
    # 40 days a customer, 30 days of usage: a 30-day window is measured, longer ones are not
    assert (a6.events_7d, a6.events_30d, a6.seat_utilization_pct) == (70.0, 300.0, 20.0)
    for name in ("events_90d", "active_days_90d", "events_trend_30d_pct", "events_slope_12w_pct",
                 "active_users_trend_30d_pct", "tickets_90d", "exec_meetings_90d", "payment_failures_90d"):
        assert pd.isna(a6[name]), name
    assert a6.tickets_30d == 0.0  # the support table is there and 30 days fit in the account's life
    a4 = before.loc[("A4", pd.Timestamp(AS_OF))]  # an account of 15 months keeps every window
    assert a4.events_90d == 1080.0 and a4.events_slope_12w_pct == pytest.approx(0.0, abs=1e-9)
