"""The play a CSM should run next, chosen from an account's drivers, health and readiness band."""

from __future__ import annotations

from serving.reasons import CHURN_RISK, EXPANSION, ReasonItem

PLAYS: dict[str, str] = {
    "upgrade_conversation": "Upgrade conversation: the account is near a plan limit or asking for higher-tier capabilities.",
    "seat_expansion": "Seat expansion: licensed seats are nearly all in use and the team is growing.",
    "cross_sell": "Cross-sell: similar accounts own products this one does not.",
    "expansion_conversation": "Proactive expansion conversation: readiness is high.",
    "executive_check_in": "Executive check-in: re-establish the relationship with the customer's sponsor.",
    "billing_follow_up": "Billing follow-up: payments are failing or late; resolve before the renewal.",
    "support_escalation": "Support escalation review: tickets are piling up or severe.",
    "success_plan_review": "Success-plan review: churn risk is high; agree outcomes and next steps with the customer.",
    "adoption_drive": "Adoption drive: training and use-case education before any expansion talk.",
    "nurture_value_content": "Nurture: share value content and new use cases.",
}

_EXPANSION_PLAYS = {
    **dict.fromkeys(("quota_utilization_30d_pct", "days_over_quota_alert_30d", "gated_feature_events_30d",
                     "feature_request_tickets_90d", "api_share_30d_pct", "whitespace_tier_usd"), "upgrade_conversation"),
    **dict.fromkeys(("seat_utilization_pct", "active_users_trend_30d_pct", "whitespace_seats_usd"), "seat_expansion"),
    **dict.fromkeys(("whitespace_products_usd", "products_owned"), "cross_sell"),
}
_CHURN_PLAYS = {
    **dict.fromkeys(("days_since_exec_touch", "exec_meetings_90d", "exec_meetings_180d", "qbrs_180d"), "executive_check_in"),
    **dict.fromkeys(("payment_failures_90d", "late_payments_90d"), "billing_follow_up"),
    **dict.fromkeys(("urgent_tickets_30d", "outage_tickets_90d", "bug_tickets_90d", "tickets_30d",
                     "tickets_trend_30d_pct", "ticket_resolution_hours_90d"), "support_escalation"),
    **dict.fromkeys(("nps_detractor", "nps_latest", "nps_change", "csat_latest", "ticket_csat_90d"), "success_plan_review"),
    **dict.fromkeys(("events_trend_30d_pct", "events_slope_12w_pct", "feature_breadth_pct", "active_days_30d",
                     "active_users_30d", "dau_mau_30d", "seat_utilization_pct"), "adoption_drive"),
}
_BAND_PLAYS = {"outreach": "expansion_conversation", "nurture": "nurture_value_content", "adoption": "adoption_drive"}


def recommend_play(reasons: list[ReasonItem], health: str, band: str) -> str:
    """The play for the strongest driver that has one; a red account gets a risk play first."""
    if health == "red":
        risk = [_CHURN_PLAYS[r.feature] for r in reasons if r.effect == CHURN_RISK and r.feature in _CHURN_PLAYS]
        return risk[0] if risk else "success_plan_review"
    for r in reasons:
        if health == "green" and r.effect == CHURN_RISK:
            continue  # a healthy account is not sent a risk play
        play = (_EXPANSION_PLAYS if r.effect == EXPANSION else _CHURN_PLAYS).get(r.feature)
        if play is not None:
            return play
    return _BAND_PLAYS.get(band, "nurture_value_content")
