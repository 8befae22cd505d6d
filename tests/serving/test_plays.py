"""Plays on hand-built reasons: the strongest driver decides, health comes first."""

from __future__ import annotations

from serving.plays import PLAYS, recommend_play
from serving.reasons import CHURN_RISK, EXPANSION, ReasonItem


def test_plays_follow_the_strongest_driver_and_red_health_goes_to_risk_first() -> None:
    near_limit = ReasonItem("Usage at 86 % of plan limit (30 days)", "quota_utilization_30d_pct", EXPANSION, 0.9)
    lost_sponsor = ReasonItem("200 days since the last executive contact", "days_since_exec_touch", CHURN_RISK, 0.4)
    assert recommend_play([near_limit, lost_sponsor], "green", "outreach") == "upgrade_conversation"
    assert recommend_play([near_limit, lost_sponsor], "red", "outreach") == "executive_check_in"
    assert recommend_play([near_limit], "red", "outreach") == "success_plan_review"
    assert recommend_play([], "green", "adoption") == "adoption_drive"
    assert recommend_play([], "yellow", "nurture") == "nurture_value_content"
    assert all(p in PLAYS for p in ("upgrade_conversation", "executive_check_in", "success_plan_review"))


def test_a_green_account_is_never_sent_a_risk_play() -> None:
    ticket_spike = ReasonItem("3 urgent tickets in 30 days", "urgent_tickets_30d", CHURN_RISK, 0.9)
    near_limit = ReasonItem("Usage at 86 % of plan limit (30 days)", "quota_utilization_30d_pct", EXPANSION, 0.5)
    assert recommend_play([ticket_spike, near_limit], "green", "outreach") == "upgrade_conversation"
    assert recommend_play([ticket_spike], "green", "nurture") == "nurture_value_content"
    assert recommend_play([ticket_spike], "yellow", "nurture") == "support_escalation"
