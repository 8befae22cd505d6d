"""Each feature family on hand-built data whose answers can be worked out by hand."""

from __future__ import annotations

import datetime as dt

import pandas as pd
import pytest

from features.build import build_features
from features.config import Settings
from features.io import open_data
from features.registry import feature_names

AS_OF = dt.date(2025, 3, 31)


def _row_frame(folder, dates=(AS_OF,), **settings) -> pd.DataFrame:
    source = open_data(folder)
    try:
        frame = build_features(source, list(dates), Settings(_env_file=None, **settings))
    finally:
        source.close()
    return frame.set_index("account_id")


@pytest.fixture
def tiny(tiny_company) -> pd.DataFrame:
    return _row_frame(tiny_company())


def test_usage_volume_activity_and_seat_utilisation(tiny):
    a4 = tiny.loc["A4"]  # 12 events and 5 active users (on its busiest feature) every day, 10 seats
    assert (a4.events_7d, a4.events_30d, a4.events_90d) == (84.0, 360.0, 1080.0)
    assert (a4.active_days_30d, a4.active_days_90d, a4.active_users_30d) == (30.0, 90.0, 5.0)
    assert a4.seat_utilization_pct == pytest.approx(50.0)
    assert a4.dau_mau_30d == pytest.approx(1.0)
    assert a4.events_trend_30d_pct == pytest.approx(0.0)


def test_quota_and_api_share(tiny):
    a1 = tiny.loc["A1"]  # 25 events a day on a 1,000-event monthly quota; 5 of them on api_calls
    assert a1.quota_utilization_30d_pct == pytest.approx(75.0)
    assert a1.api_share_30d_pct == pytest.approx(20.0)
    assert a1.days_over_quota_alert_30d == 0.0  # 25/day is 75 % of the quota pace, under the 80 % alert


def test_days_over_quota_alert_count_days_at_the_alert_pace(tiny_company):
    frame = _row_frame(tiny_company(), quota_alert_pct=70.0)
    assert frame.loc["A1", "days_over_quota_alert_30d"] == 30.0
    assert frame.loc["A3", "days_over_quota_alert_30d"] == 0.0  # 10 a day on 1,000 is far below


def test_days_over_quota_alert_use_the_quota_in_force_at_each_snapshot(tiny_company):
    def lower_later_quota(t):
        subs = t["subscriptions"]
        subs.loc[(subs.account_id == "A1") & (subs.valid_from == dt.date(2025, 5, 10)), "usage_limit"] = 900.0
    frame = _row_frame(tiny_company(lower_later_quota), dates=(AS_OF, dt.date(2025, 5, 31))).reset_index()
    a1 = frame[frame.account_id == "A1"].set_index("as_of")
    # 25 a day: under the 80 % pace of 1,000 (26.7 a day) in March, over that of 900 (24) on all 30 days to May 31.
    assert a1.loc[pd.Timestamp(AS_OF), "days_over_quota_alert_30d"] == 0.0
    assert a1.loc[pd.Timestamp(2025, 5, 31), "days_over_quota_alert_30d"] == 30.0


def test_trends_and_slope_follow_growing_usage(tiny_company):
    def grow(t):
        u = t["usage_daily"]
        recent = (u.account_id == "A4") & (u.date > dt.date(2025, 3, 1))
        u.loc[recent, "events"] = u.loc[recent, "events"] * 2
        u.loc[recent & (u.feature_key == "dash"), "active_users"] = 8
    frame = _row_frame(tiny_company(grow))
    a4 = frame.loc["A4"]
    assert a4.events_trend_30d_pct == pytest.approx(100.0)
    assert a4.active_users_trend_30d_pct == pytest.approx(60.0)
    assert a4.events_slope_12w_pct > 0
    assert frame.loc["A3", "events_slope_12w_pct"] == pytest.approx(0.0)


def test_slope_is_the_weekly_change_of_a_linear_daily_series(tiny_company):
    def linear(t):
        u = t["usage_daily"]
        a4_dash = (u.account_id == "A4") & (u.feature_key == "dash")
        age = (pd.Timestamp(AS_OF) - pd.to_datetime(u.loc[a4_dash, "date"])).dt.days
        u.loc[a4_dash, "events"] = 200 - age  # one more event a day, every day, up to 200 at as_of
        u.loc[(u.account_id == "A4") & (u.feature_key == "report"), "events"] = 0
    a4 = _row_frame(tiny_company(linear)).loc["A4"]
    # Over the 84 days to as_of: daily events 117..200, so a week's events grow by 7 x 7 = 49 a week
    # and the mean week is 7 x 158.5 = 1,109.5 events.
    assert a4.events_slope_12w_pct == pytest.approx(49 / 1109.5 * 100)


def test_adoption_breadth_gated_use_tier_and_new_features(tiny_company):
    def new_feature(t):
        t["usage_daily"] = pd.concat([t["usage_daily"], pd.DataFrame({
            "account_id": ["A3"], "date": [dt.date(2025, 3, 20)], "feature_key": ["report"],
            "events": [3], "active_users": [1]})], ignore_index=True)
    frame = _row_frame(tiny_company(new_feature))
    a1, a3, a4 = frame.loc["A1"], frame.loc["A3"], frame.loc["A4"]
    assert a4.feature_breadth_pct == pytest.approx(100.0)  # uses both keys 'basic' unlocks
    assert a1.feature_breadth_pct == pytest.approx(50.0)
    assert a1.gated_feature_events_30d == 150.0  # api_calls is only in 'pro': 5 a day for 30 days
    assert a4.gated_feature_events_30d == 0.0
    assert (a1.plan_tier_rank, frame.loc["A2", "plan_tier_rank"]) == (1.0, 2.0)
    assert (a3.products_owned, a3.features_new_30d, a4.features_new_30d) == (2.0, 1.0, 0.0)
    assert a3.features_used_30d == 2.0


def test_engagement_tickets_surveys_touches_payments(tiny):
    a1, a2 = tiny.loc["A1"], tiny.loc["A2"]
    assert (a1.tickets_30d, a1.tickets_90d, a1.urgent_tickets_30d, a1.bug_tickets_90d) == (1.0, 2.0, 1.0, 1.0)
    assert a1.feature_request_tickets_90d == 1.0
    assert a1.ticket_resolution_hours_90d == pytest.approx((24 + 4) / 2)
    assert a1.ticket_csat_90d == pytest.approx(3.0)
    # A2: a ticket opened late on as_of counts; its resolution two days later does not.
    assert (a2.tickets_30d, a2.outage_tickets_90d) == (2.0, 1.0)
    assert pd.isna(a2.ticket_resolution_hours_90d)
    assert (a1.nps_latest, a1.nps_change, a1.nps_detractor) == (9.0, 3.0, 0.0)
    assert (a2.nps_latest, a2.nps_detractor) == (3.0, 1.0) and pd.isna(a2.nps_change)
    assert tiny.loc["A3", "csat_latest"] == 4.0
    assert (a1.exec_meetings_90d, a1.exec_meetings_180d, a1.qbrs_180d) == (1.0, 2.0, 1.0)
    assert (a1.days_since_last_touch, a1.days_since_exec_touch) == (2.0, 20.0)
    assert pd.isna(tiny.loc["A3", "days_since_last_touch"])  # its only touch is over a year old
    assert (a2.payment_failures_90d, a2.late_payments_90d) == (1.0, 1.0)  # the 2024-11 failure is outside 90d
    assert tiny.loc["A4", "tickets_30d"] == 0.0


def test_absent_optional_tables_give_null_features_not_errors(tiny_company):
    optional = ("products", "plan_features", "support_tickets", "surveys", "activities", "payments")
    frame = _row_frame(tiny_company(lambda t: [t.pop(name) for name in optional]))
    for name in ("feature_breadth_pct", "gated_feature_events_30d", "plan_tier_rank", "tickets_30d",
                 "nps_latest", "exec_meetings_90d", "payment_failures_90d", "whitespace_tier_usd"):
        assert frame[name].isna().all(), name
    assert frame["events_30d"].notna().all() and frame["whitespace_usd"].notna().all()
    assert list(frame.columns[6:]) == feature_names()


def test_whitespace_seats_tier_and_cap(tiny):
    # smb peers: seats/employee 0.10 (A1), 0.10 (A2), 0.25 (A4): the top ratio is 0.25.
    a1 = tiny.loc["A1"]
    assert a1.whitespace_seats_usd == pytest.approx((25 - 10) * 10.0 * 12)
    assert a1.whitespace_tier_usd == pytest.approx((20.0 - 10.0) * 10 * 12)
    assert tiny.loc["A2", "whitespace_tier_usd"] == 0.0  # already on the top tier
    assert (tiny["whitespace_usd"] <= tiny["arr"] * 3.0 + 1e-9).all()
    assert a1.whitespace_usd == pytest.approx(min(1800 + 1200, 3 * 1200))


def test_account_context(tiny):
    a1 = tiny.loc["A1"]
    assert (a1.segment, a1.acquisition_channel, a1.region) == ("smb", "direct", "emea")
    assert (a1.mrr, a1.arr, a1.seats, a1.employees) == (100.0, 1200.0, 10.0, 100.0)
    assert a1.months_to_fiscal_year_start == 4.0  # March -> July
    assert pd.isna(tiny.loc["A3", "months_to_fiscal_year_start"])
    assert a1.tenure_months == pytest.approx(455 / 30.4375)
    assert tiny.loc["A4", "months_to_renewal"] == pytest.approx(91 / 30.4375)
    assert (tiny.loc["A3", "expansions_past"], tiny.loc["A3", "contractions_past"]) == (1.0, 0.0)


def test_mrr_growth_and_history_after_an_expansion(tiny_company):
    frame = _row_frame(tiny_company(), dates=[dt.date(2025, 6, 30)])
    a1 = frame.loc["A1"]
    assert a1.mrr_growth_180d_pct == pytest.approx(50.0)
    assert a1.expansions_past == 1.0
    assert a1.months_since_last_expansion == pytest.approx(51 / 30.4375)


def test_generated_company_features_are_in_range(feature_frame):
    pct_bounded = ["feature_breadth_pct", "api_share_30d_pct"]
    for col in pct_bounded:
        values = feature_frame[col].dropna()
        assert ((values >= 0) & (values <= 100)).all(), col
    both = feature_frame[["events_30d", "events_90d"]].dropna()
    assert (both["events_30d"] <= both["events_90d"]).all()
    assert (feature_frame["active_days_30d"].dropna() <= 30).all()
    assert (feature_frame["whitespace_usd"] <= feature_frame["arr"] * 3.0 + 1e-6).all()
    assert feature_frame["events_30d"].gt(0).mean() > 0.5


def test_no_windowed_feature_reaches_before_the_accounts_first_day(feature_frame, generated_company):
    """A window longer than the account's life is null; once the life covers it, the feature is measured."""
    from features.account import TENURE_FAMILIES
    from features.registry import FEATURES, full_window_days, measures_usage

    subs = pd.read_parquet(generated_company / "subscriptions.parquet")
    usage = pd.read_parquet(generated_company / "usage_daily.parquet", columns=["account_id", "date"])
    first_sub = pd.to_datetime(subs.groupby("account_id")["valid_from"].min())
    first_use = pd.to_datetime(usage.groupby("account_id")["date"].min())
    frame = feature_frame
    as_of = pd.to_datetime(frame["as_of"])
    sub_life = (as_of - frame["account_id"].astype(str).map(first_sub)).dt.days + 1
    used = frame["account_id"].astype(str).map(first_use)
    use_start = used.where(used <= as_of, frame["account_id"].astype(str).map(first_sub))
    use_life = (as_of - use_start).dt.days + 1
    checked = 0
    for spec in FEATURES:
        days = full_window_days(spec)
        if days is None or spec.family not in TENURE_FAMILIES:
            continue
        life = use_life if measures_usage(spec) else sub_life
        young = life < days
        assert frame.loc[young, spec.name].isna().all(), spec.name
        checked += int(young.sum())
        if spec.name in ("events_90d", "events_slope_12w_pct", "tickets_90d", "exec_meetings_180d"):
            assert frame.loc[~young, spec.name].notna().mean() > 0.9, spec.name  # measured where the life covers it
    assert checked > 1000
