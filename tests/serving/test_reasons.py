"""Reasons and plays on hand-built feature rows and contributions."""

from __future__ import annotations

import math

from serving.reasons import CHURN_RISK, EXPANSION, PLAYS, ReasonItem, explain, reason_text, recommend_play, rule_reasons


def test_templates_read_like_a_csm_would_say_them() -> None:
    assert reason_text("quota_utilization_30d_pct", 86.4) == "Usage at 86 % of plan limit (30 days)"
    assert reason_text("active_users_trend_30d_pct", 40.0) == "Active users up 40 % in 30 days"
    assert reason_text("events_trend_30d_pct", -25.0) == "Usage down 25 % in 30 days"
    assert reason_text("urgent_tickets_30d", 2.0) == "2 urgent tickets in 30 days"
    assert reason_text("urgent_tickets_30d", 1.0) == "1 urgent ticket in 30 days"
    assert reason_text("exec_meetings_90d", 0.0) == "No executive meetings in 90 days"


def test_unknown_values_give_no_reason_and_unknown_features_use_the_registry_text() -> None:
    class Spec:
        description = "Mean widgets per seat."
        unit = "widgets"

    assert reason_text("quota_utilization_30d_pct", float("nan")) is None
    assert reason_text("quota_utilization_30d_pct", None) is None
    assert reason_text("widgets_per_seat", 3.0, Spec()) == "Mean widgets per seat: 3"
    assert reason_text("segment", "enterprise") == "Segment: enterprise"


def test_explain_keeps_positive_drivers_strongest_first_and_skips_unknowns() -> None:
    row = {"quota_utilization_30d_pct": 86.0, "urgent_tickets_30d": 2.0, "nps_latest": math.nan,
           "seat_utilization_pct": 95.0, "feature_breadth_pct": 70.0}
    contributions = {
        EXPANSION: {"quota_utilization_30d_pct": 0.9, "seat_utilization_pct": 0.3, "feature_breadth_pct": -0.4,
                    "nps_latest": 2.0, "urgent_tickets_30d": -0.1},
        CHURN_RISK: {"urgent_tickets_30d": 0.5, "quota_utilization_30d_pct": 0.05, "feature_breadth_pct": -0.2},
    }
    reasons = explain(row, contributions, top_k=5)
    assert [r.feature for r in reasons] == ["quota_utilization_30d_pct", "urgent_tickets_30d", "seat_utilization_pct"]
    assert [r.effect for r in reasons] == [EXPANSION, CHURN_RISK, EXPANSION]
    assert reasons[1].text == "2 urgent tickets in 30 days"
    assert len(explain(row, contributions, top_k=2)) == 2


def test_plays_follow_the_strongest_driver_and_red_health_goes_to_risk_first() -> None:
    near_limit = ReasonItem("Usage at 86 % of plan limit (30 days)", "quota_utilization_30d_pct", EXPANSION, 0.9)
    lost_sponsor = ReasonItem("200 days since the last executive contact", "days_since_exec_touch", CHURN_RISK, 0.4)
    assert recommend_play([near_limit, lost_sponsor], "green", "outreach") == "upgrade_conversation"
    assert recommend_play([near_limit, lost_sponsor], "red", "outreach") == "executive_check_in"
    assert recommend_play([near_limit], "red", "outreach") == "success_plan_review"
    assert recommend_play([], "green", "adoption") == "adoption_drive"
    assert recommend_play([], "yellow", "nurture") == "nurture_value_content"
    assert all(p in PLAYS for p in ("upgrade_conversation", "executive_check_in", "success_plan_review"))


def test_rule_reasons_fire_on_thresholds_only() -> None:
    calm = {"quota_utilization_30d_pct": 50.0, "payment_failures_90d": 0.0, "urgent_tickets_30d": 0.0}
    assert rule_reasons(calm) == []
    hot = {"quota_utilization_30d_pct": 85.0, "payment_failures_90d": 2.0}
    reasons = rule_reasons(hot)
    assert [r.feature for r in reasons] == ["payment_failures_90d", "quota_utilization_30d_pct"]
    assert reasons[0].effect == CHURN_RISK and reasons[0].contribution is None
