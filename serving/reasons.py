"""Readable reasons from model contributions, and the play a CSM should run next.

Pure functions of one feature row and its contributions: no model, no I/O. The wording
of a reason comes from a template for the features CSMs talk about most (quota, seats,
user growth, tickets, sponsor contact, payments) and otherwise from the feature registry
(description, unit), so that every feature can explain itself.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

EXPANSION, CHURN_RISK = "expansion", "churn_risk"


@dataclass(frozen=True)
class ReasonItem:
    """One driver: readable text, the feature behind it, the outcome it pushes towards."""

    text: str
    feature: str
    effect: str
    contribution: float | None

    def as_dict(self) -> dict[str, Any]:
        return {"text": self.text, "feature": self.feature, "effect": self.effect, "contribution": self.contribution}


def _num(v: float) -> str:
    return f"{v:,.0f}" if abs(v) >= 10 or float(v).is_integer() else f"{v:,.1f}"


def _change(what: str, window: str) -> Callable[[float], str]:
    return lambda v: f"{what} {'up' if v >= 0 else 'down'} {abs(v):.0f} % in {window}"


def _count(singular: str, plural: str, window: str) -> Callable[[float], str]:
    return lambda v: f"{'No' if v == 0 else _num(v)} {singular if v == 1 else plural} in {window}"


TEMPLATES: dict[str, Callable[[float], str]] = {
    "quota_utilization_30d_pct": lambda v: f"Usage at {v:.0f} % of plan limit (30 days)",
    "days_over_quota_alert_30d": lambda v: f"{_num(v)} days near the plan limit in 30 days",
    "seat_utilization_pct": lambda v: f"{v:.0f} % of licensed seats active",
    "active_users_trend_30d_pct": _change("Active users", "30 days"),
    "events_trend_30d_pct": _change("Usage", "30 days"),
    "events_slope_12w_pct": _change("Usage trend", "12 weeks"),
    "mrr_growth_180d_pct": _change("MRR", "180 days"),
    "tickets_trend_30d_pct": _change("Support tickets", "30 days"),
    "api_share_30d_pct": lambda v: f"API calls are {v:.0f} % of usage (30 days)",
    "feature_breadth_pct": lambda v: f"Using {v:.0f} % of the plan's features",
    "features_new_30d": _count("new feature adopted", "new features adopted", "30 days"),
    "urgent_tickets_30d": _count("urgent ticket", "urgent tickets", "30 days"),
    "tickets_30d": _count("support ticket", "support tickets", "30 days"),
    "bug_tickets_90d": _count("bug ticket", "bug tickets", "90 days"),
    "outage_tickets_90d": _count("outage ticket", "outage tickets", "90 days"),
    "feature_request_tickets_90d": _count("feature request", "feature requests", "90 days"),
    "exec_meetings_90d": _count("executive meeting", "executive meetings", "90 days"),
    "exec_meetings_180d": _count("executive meeting", "executive meetings", "180 days"),
    "qbrs_180d": _count("QBR", "QBRs", "180 days"),
    "payment_failures_90d": _count("failed payment", "failed payments", "90 days"),
    "late_payments_90d": _count("late payment", "late payments", "90 days"),
    "days_since_exec_touch": lambda v: f"{_num(v)} days since the last executive contact",
    "days_since_last_touch": lambda v: f"{_num(v)} days since the last CSM touch",
    "nps_latest": lambda v: f"Latest NPS score {_num(v)}",
    "nps_change": lambda v: f"NPS {'up' if v >= 0 else 'down'} {abs(v):.0f} points",
    "nps_detractor": lambda v: "Detractor NPS response" if v else "No detractor NPS response",
    "csat_latest": lambda v: f"Latest CSAT {v:.1f} of 5",
    "whitespace_usd": lambda v: f"${v:,.0f} of whitespace",
    "whitespace_seats_usd": lambda v: f"${v:,.0f} whitespace in unlicensed seats",
    "whitespace_products_usd": lambda v: f"${v:,.0f} whitespace in products not yet owned",
    "whitespace_tier_usd": lambda v: f"${v:,.0f} headroom to the next tier",
    "months_to_renewal": lambda v: f"Renewal in {_num(v)} months",
    "months_to_fiscal_year_start": lambda v: f"Customer's fiscal year starts in {_num(v)} months",
    "products_owned": lambda v: f"Owns {_num(v)} product{'s' if v != 1 else ''}",
    "expansions_past": _count("past expansion", "past expansions", "the account's history"),
    "tenure_months": lambda v: f"Customer for {_num(v)} months",
    "arr": lambda v: f"ARR ${v:,.0f}",
    "mrr": lambda v: f"MRR ${v:,.0f}",
    "seats": lambda v: f"{_num(v)} licensed seats",
    "employees": lambda v: f"{_num(v)} employees",
}


def _missing(value: Any) -> bool:
    return value is None or (isinstance(value, float) and math.isnan(value))


def _generic_text(feature: str, value: Any, spec: Any | None) -> str:
    label = getattr(spec, "description", None) or feature.replace("_", " ").capitalize()
    label = label.rstrip(".")
    if isinstance(value, str):
        return f"{label}: {value}"
    unit = str(getattr(spec, "unit", "") or "")
    if feature.endswith("_pct") or unit in {"%", "pct", "percent"}:
        return f"{label}: {value:.0f} %"
    if feature.endswith("_usd") or unit in {"usd", "$", "currency"}:
        return f"{label}: ${value:,.0f}"
    return f"{label}: {_num(float(value))}"


def reason_text(feature: str, value: Any, spec: Any | None = None) -> str | None:
    """The readable sentence for one feature value, or None when the value is unknown."""
    if _missing(value):
        return None
    template = TEMPLATES.get(feature)
    if template is not None and not isinstance(value, str):
        return template(float(value))
    return _generic_text(feature, value, spec)


def explain(
    row: Mapping[str, Any],
    contributions: Mapping[str, Mapping[str, float]],
    specs: Mapping[str, Any] | None = None,
    top_k: int = 5,
) -> list[ReasonItem]:
    """Top drivers of one account, strongest first.

    ``contributions`` maps an effect (``expansion`` or ``churn_risk``) to that model's
    per-feature contributions. Only features that push *towards* the outcome (positive
    contribution) are drivers; features with unknown values are skipped because "X is
    unknown" helps no CSM. A feature appears once, under its stronger effect.
    """
    candidates: list[tuple[float, str, str]] = []
    for effect, contrib in contributions.items():
        for feature, c in contrib.items():
            if c is not None and c > 0 and feature in row and not _missing(row[feature]):
                candidates.append((float(c), feature, effect))
    candidates.sort(key=lambda t: -t[0])
    out: list[ReasonItem] = []
    seen: set[str] = set()
    for c, feature, effect in candidates:
        if feature in seen:
            continue
        text = reason_text(feature, row[feature], (specs or {}).get(feature))
        if text is None:
            continue
        seen.add(feature)
        out.append(ReasonItem(text, feature, effect, round(c, 4)))
        if len(out) == top_k:
            break
    return out


# Rule reasons explain the baseline when no model is deployed. Thresholds are the
# rules of thumb CS teams use (80 % of a quota is the moment to talk; a 20 % swing in
# usage is a trend), ordered by how urgently a CSM should hear them.
RULES: tuple[tuple[str, str, Callable[[float], bool]], ...] = (
    ("payment_failures_90d", CHURN_RISK, lambda v: v >= 1),
    ("urgent_tickets_30d", CHURN_RISK, lambda v: v >= 1),
    ("nps_detractor", CHURN_RISK, lambda v: v >= 1),
    ("events_trend_30d_pct", CHURN_RISK, lambda v: v <= -20),
    ("days_since_exec_touch", CHURN_RISK, lambda v: v >= 180),
    ("quota_utilization_30d_pct", EXPANSION, lambda v: v >= 80),
    ("seat_utilization_pct", EXPANSION, lambda v: v >= 90),
    ("active_users_trend_30d_pct", EXPANSION, lambda v: v >= 20),
    ("events_trend_30d_pct", EXPANSION, lambda v: v >= 20),
    ("feature_request_tickets_90d", EXPANSION, lambda v: v >= 1),
    ("feature_breadth_pct", CHURN_RISK, lambda v: v < 50),
    ("whitespace_usd", EXPANSION, lambda v: v > 0),
)


def rule_reasons(row: Mapping[str, Any], specs: Mapping[str, Any] | None = None, top_k: int = 5) -> list[ReasonItem]:
    """Reasons from fixed rules on the feature values, used when no model contributions exist."""
    out: list[ReasonItem] = []
    for feature, effect, fires in RULES:
        value = row.get(feature)
        if _missing(value) or isinstance(value, str) or not fires(float(value)):
            continue
        if any(r.feature == feature for r in out):
            continue
        out.append(ReasonItem(reason_text(feature, value, (specs or {}).get(feature)) or feature, feature, effect, None))
        if len(out) == top_k:
            break
    return out


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
        play = (_EXPANSION_PLAYS if r.effect == EXPANSION else _CHURN_PLAYS).get(r.feature)
        if play is not None:
            return play
    return _BAND_PLAYS.get(band, "nurture_value_content")
