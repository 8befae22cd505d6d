"""The feature registry: every feature declared once, read by the docs, training and the reasons.

``render_docs()`` produces ``docs/features.md``; a test checks the file matches it.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Literal

Family = Literal["usage", "adoption", "engagement", "whitespace", "account", "pipeline"]
Direction = Literal["higher", "lower", "neutral"]
Kind = Literal["numeric", "categorical"]

FAMILIES: tuple[Family, ...] = ("usage", "adoption", "engagement", "whitespace", "account", "pipeline")


@dataclass(frozen=True)
class FeatureSpec:
    """One feature: its name, family, window, unit, one-line description, which direction is good, and the
    concept a CSM reads it as (``features.reason_catalog``: one reason per concept, context never a reason)."""

    name: str
    family: Family
    window: str
    unit: str
    description: str
    good: Direction = "neutral"
    kind: Kind = "numeric"
    source: str = "usage_daily"
    concept: str = ""


def _f(name: str, concept: str, family: Family, window: str, unit: str, good: Direction, source: str,
       description: str, kind: Kind = "numeric") -> FeatureSpec:
    return FeatureSpec(name, family, window, unit, description, good, kind, source, concept)


FEATURES: tuple[FeatureSpec, ...] = (
    # usage
    _f("events_7d", "usage_volume", "usage", "7d", "events", "higher", "usage_daily",
       "Events recorded over the last 7 days."),
    _f("events_30d", "usage_volume", "usage", "30d", "events", "higher", "usage_daily",
       "Events recorded over the last 30 days."),
    _f("events_90d", "usage_volume", "usage", "90d", "events", "higher", "usage_daily",
       "Events recorded over the last 90 days."),
    _f("active_days_30d", "usage_volume", "usage", "30d", "days", "higher", "usage_daily",
       "Days with at least one event in the last 30."),
    _f("active_days_90d", "usage_volume", "usage", "90d", "days", "higher", "usage_daily",
       "Days with at least one event in the last 90."),
    _f("active_users_30d", "active_users", "usage", "30d", "users", "higher", "usage_daily",
       "Largest daily active-user count in the last 30 days (a lower bound of monthly active users)."),
    _f("dau_mau_30d", "usage_volume", "usage", "30d", "ratio 0-1", "higher", "usage_daily",
       "Mean daily active users over 30 days (idle days count as 0) / active_users_30d."),
    _f("events_trend_30d_pct", "usage_trend", "usage", "30d vs previous 30d", "%", "higher", "usage_daily",
       "Change of events in the last 30 days against the 30 before; null when the earlier window had none."),
    _f("events_slope_12w_pct", "usage_trend", "usage", "12w", "% per week", "higher", "usage_daily",
       "Least-squares slope of daily events over the last 84 days, as the weekly change of a week's events, % of the mean week."),
    _f("active_users_trend_30d_pct", "active_users", "usage", "30d vs previous 30d", "%", "higher", "usage_daily",
       "Change of active_users_30d against the previous 30 days."),
    _f("seat_utilization_pct", "seats", "usage", "30d", "%", "higher", "usage_daily, subscriptions",
       "active_users_30d / licensed seats in force at as_of."),
    _f("quota_utilization_30d_pct", "quota", "usage", "30d", "%", "higher", "usage_daily, subscriptions",
       "events_30d / sum of the monthly usage_limit of the subscriptions in force; null when unlimited."),
    _f("days_over_quota_alert_30d", "quota", "usage", "30d", "days", "higher", "usage_daily, subscriptions",
       "Days in the last 30 whose events, at that daily pace for 30 days, reach quota_alert_pct of the "
       "monthly limit (a proxy for trailing-30-day use near the limit, the near_quota condition); null when unlimited."),
    _f("api_share_30d_pct", "api_use", "usage", "30d", "%", "higher", "usage_daily",
       "Share of events_30d on feature keys containing Settings.api_feature_pattern (case-insensitive)."),
    # adoption
    _f("feature_breadth_pct", "breadth", "adoption", "30d", "%", "higher", "usage_daily, plan_features",
       "Feature keys unlocked by the current plan(s) that were used in 30 days / keys unlocked; null without plan_features."),
    _f("features_used_30d", "breadth", "adoption", "30d", "features", "higher", "usage_daily",
       "Distinct feature keys used in the last 30 days."),
    _f("features_new_30d", "breadth", "adoption", "30d", "features", "higher", "usage_daily",
       "Feature keys used for the first time in the last 30 days."),
    _f("products_owned", "products", "adoption", "at as_of", "products", "higher", "subscriptions",
       "Products with MRR > 0 at as_of."),
    _f("plan_tier_rank", "plan", "adoption", "at as_of", "rank", "higher", "subscriptions, products",
       "Highest tier_rank among the plans in force; null without products."),
    _f("gated_feature_events_30d", "upgrade_demand", "adoption", "30d", "events", "higher", "usage_daily, plan_features",
       "Events on keys of a held product that the current plan does not unlock; null without plan_features."),
    # engagement
    _f("tickets_30d", "support", "engagement", "30d", "tickets", "lower", "support_tickets",
       "Tickets opened in the last 30 days."),
    _f("tickets_90d", "support", "engagement", "90d", "tickets", "lower", "support_tickets",
       "Tickets opened in the last 90 days."),
    _f("tickets_trend_30d_pct", "support", "engagement", "30d vs previous 30d", "%", "lower", "support_tickets",
       "Change of tickets_30d against the previous 30 days; null when the earlier window had none."),
    _f("urgent_tickets_30d", "support", "engagement", "30d", "tickets", "lower", "support_tickets",
       "Urgent-priority tickets opened in the last 30 days."),
    _f("bug_tickets_90d", "support", "engagement", "90d", "tickets", "lower", "support_tickets",
       "Bug tickets opened in 90 days."),
    _f("outage_tickets_90d", "support", "engagement", "90d", "tickets", "lower", "support_tickets",
       "Outage tickets opened in 90 days."),
    _f("feature_request_tickets_90d", "upgrade_demand", "engagement", "90d", "tickets", "higher", "support_tickets",
       "Feature-request tickets opened in 90 days (appetite for more capability)."),
    _f("ticket_resolution_hours_90d", "support", "engagement", "90d", "hours", "lower", "support_tickets",
       "Mean hours to resolution of tickets opened in 90 days and resolved by as_of."),
    _f("ticket_csat_90d", "support", "engagement", "90d", "score 1-5", "higher", "support_tickets",
       "Mean CSAT of tickets opened in 90 days and resolved by as_of."),
    _f("csat_latest", "sentiment", "engagement", "365d", "score 1-5", "higher", "surveys",
       "Most recent CSAT survey response within a year."),
    _f("nps_latest", "sentiment", "engagement", "365d", "score 0-10", "higher", "surveys",
       "Most recent NPS response within a year."),
    _f("nps_change", "sentiment", "engagement", "365d", "points", "higher", "surveys",
       "nps_latest minus the NPS response before it (within a year)."),
    _f("nps_detractor", "sentiment", "engagement", "365d", "flag 0/1", "lower", "surveys",
       "1 when nps_latest is 6 or less."),
    _f("exec_meetings_90d", "sponsor", "engagement", "90d", "meetings", "higher", "activities",
       "Meetings and QBRs with a customer executive in 90 days."),
    _f("exec_meetings_180d", "sponsor", "engagement", "180d", "meetings", "higher", "activities",
       "Meetings and QBRs with a customer executive in 180 days."),
    _f("qbrs_180d", "sponsor", "engagement", "180d", "meetings", "higher", "activities", "QBRs held in 180 days."),
    _f("days_since_last_touch", "csm_contact", "engagement", "365d", "days", "lower", "activities",
       "Days since the last CRM touch of any kind; null when none within a year."),
    _f("days_since_exec_touch", "sponsor", "engagement", "365d", "days", "lower", "activities",
       "Days since the last touch with a customer executive; null when none within a year."),
    _f("payment_failures_90d", "billing", "engagement", "90d", "invoices", "lower", "payments",
       "Invoices due in 90 days whose payment failed."),
    _f("late_payments_90d", "billing", "engagement", "90d", "invoices", "lower", "payments",
       "Invoices due in 90 days that were paid late."),
    # whitespace
    _f("whitespace_seats_usd", "whitespace", "whitespace", "at as_of", "currency / year", "higher", "accounts, subscriptions",
       "Seats similar accounts reached but this one has not licensed, at its own price per seat, annual."),
    _f("whitespace_products_usd", "whitespace", "whitespace", "at as_of", "currency / year", "higher", "subscriptions",
       "Unowned products weighted by their attach rate in the segment, at their mean MRR there, annual."),
    _f("whitespace_tier_usd", "whitespace", "whitespace", "at as_of", "currency / year", "higher", "subscriptions, products",
       "Next-tier list-price difference per seat × seats, over held products, annual; null without products."),
    _f("whitespace_usd", "whitespace", "whitespace", "at as_of", "currency / year", "higher", "accounts, subscriptions",
       "Sum of the whitespace parts, capped at whitespace_cap_multiple × ARR."),
    # account
    _f("segment", "segment", "account", "static", "category", "neutral", "accounts", "Market segment.", "categorical"),
    _f("industry", "industry", "account", "static", "category", "neutral", "accounts", "Industry.", "categorical"),
    _f("acquisition_channel", "channel", "account", "static", "category", "neutral", "accounts",
       "How the account was won.", "categorical"),
    _f("region", "region", "account", "static", "category", "neutral", "accounts", "Sales region.", "categorical"),
    _f("employees", "account_size", "account", "static", "people", "neutral", "accounts", "Headcount of the customer."),
    _f("tenure_months", "tenure", "account", "at as_of", "months", "neutral", "accounts",
       "Months since customer_since."),
    _f("mrr", "account_size", "account", "at as_of", "currency / month", "neutral", "subscriptions",
       "MRR in force at as_of."),
    _f("arr", "account_size", "account", "at as_of", "currency / year", "neutral", "subscriptions", "12 × mrr."),
    _f("seats", "account_size", "account", "at as_of", "seats", "neutral", "subscriptions",
       "Licensed seats in force at as_of."),
    _f("months_to_renewal", "renewal_timing", "account", "at as_of", "months", "neutral", "subscriptions",
       "Months to the nearest renewal_date on or after as_of; null when none is known."),
    _f("months_to_fiscal_year_start", "budget_cycle", "account", "at as_of", "months", "neutral", "accounts",
       "Months (0-11) from the month of as_of to the customer's fiscal-year start month; null when unknown."),
    _f("expansions_past", "revenue_history", "account", "history", "movements", "higher", "subscriptions",
       "Expansion movements on or before as_of."),
    _f("contractions_past", "revenue_history", "account", "history", "movements", "lower", "subscriptions",
       "Contraction movements on or before as_of."),
    _f("months_since_last_expansion", "revenue_history", "account", "history", "months", "neutral", "subscriptions",
       "Months since the last expansion movement; null when none."),
    _f("mrr_growth_180d_pct", "revenue_history", "account", "180d", "%", "higher", "subscriptions",
       "Change of MRR against 180 days earlier; null when the account paid nothing then."),
    # pipeline (optional opportunity tables; null without them)
    _f("open_expansion_opportunity", "pipeline", "pipeline", "at as_of", "0/1", "higher", "opportunities",
       "1 when an expansion, cross-sell or upsell deal created by as_of had not closed by then."),
    _f("open_expansion_amount_usd", "pipeline", "pipeline", "at as_of", "currency / year", "higher", "opportunities",
       "ARR change of the open expansion deals at as_of (their amounts), summed."),
    _f("open_opportunity_stage_rank", "pipeline", "pipeline", "at as_of", "rank", "higher",
       "opportunities, opportunity_stages",
       "Rank (1 = first) in the opportunity_stages setting of the most advanced open deal's stage; null when none is open."),
    _f("open_opportunity_days_in_stage", "pipeline", "pipeline", "at as_of", "days", "lower",
       "opportunities, opportunity_stages",
       "Days the most advanced open deal has been in its stage at as_of; null when none is open."),
    _f("opportunities_won_180d", "pipeline", "pipeline", "180d", "deals", "higher", "opportunities",
       "Expansion deals won in the last 180 days."),
    _f("opportunities_lost_180d", "pipeline", "pipeline", "180d", "deals", "neutral", "opportunities",
       "Expansion deals lost in the last 180 days."),
)

# Alert signals: computed by the same engine (``build_features(..., signals=True)``, on every backend) and
# documented here, read by alert rules, but not model inputs (so a signal never moves a trained model).
SIGNAL_FEATURES: tuple[FeatureSpec, ...] = (
    _f("usage_vs_prior_90d_pct", "usage_trend", "usage", "30d vs previous 90d", "%", "higher", "usage_daily",
       "Events of the last 30 days against the mean 30 days of the 90 before them (days 31-120 back); null when "
       "those 90 days had none. The alert rule usage_drop reads it."),
)

_BY_NAME = {f.name: f for f in (*FEATURES, *SIGNAL_FEATURES)}


def get(name: str) -> FeatureSpec:
    """The spec of one feature; KeyError names the unknown feature."""
    try:
        return _BY_NAME[name]
    except KeyError:
        raise KeyError(f"feature {name!r} is not in the registry") from None


def feature_names(family: Family | None = None) -> list[str]:
    """All feature names in registry order, optionally of one family."""
    return [f.name for f in FEATURES if family is None or f.family == family]


# Windows that read the latest row within a lookback ("most recent NPS within a year", "days since the
# last touch") rather than measure over the whole window: a young account's latest row is still its latest.
LOOKBACK_WINDOWS = frozenset({"365d"})
_WINDOW = re.compile(r"^(\d+)([dw])(?: vs previous (\d+)([dw]))?$")


def full_window_days(spec: FeatureSpec) -> int | None:
    """Days of the account's life a windowed feature measures over (a trend: both windows), None when not windowed.

    The feature is a measurement only when the account existed on every one of those days
    (``features.account.within_tenure`` makes it null otherwise).
    """
    if spec.window in LOOKBACK_WINDOWS:
        return None
    match = _WINDOW.match(spec.window)
    if match is None:
        return None
    days = [int(n) * (7 if unit == "w" else 1) for n, unit in (match.group(1, 2), match.group(3, 4)) if n]
    return sum(days)


def measures_usage(spec: FeatureSpec) -> bool:
    """True when the feature measures product usage (its life starts at the first usage day), else subscriptions."""
    return "usage_daily" in spec.source


def signal_names() -> list[str]:
    """Names of the registered alert signals (computed on request, never model inputs)."""
    return [f.name for f in SIGNAL_FEATURES]


def categorical_features() -> list[str]:
    """Names of the categorical (string) features."""
    return [f.name for f in FEATURES if f.kind == "categorical"]


_FAMILY_NOTES: dict[str, str] = {
    "usage": "Windows end at `as_of` inclusive; `usage_daily` is rolled up to one row per account and day first, "
             "then to spans of days that no window boundary crosses.",
    "adoption": "Needs `plan_features` for breadth and gated use, `products` for tier rank; null without them.",
    "engagement": "Each source table is optional: its features are null when the table is absent, "
                  "counts are 0 when it is present but the window is empty.",
    "whitespace": "Annual amounts in the dataset's currency.",
    "account": "Context at `as_of`; only relative timing, never the calendar position of the snapshot.",
    "pipeline": "Needs both `opportunities` and `opportunity_stages`; null without them. A deal is open at `as_of` "
                "when created by then and not closed by the end of that day (its later outcome is never read).",
}


def render_docs() -> str:
    """The text of ``docs/features.md``, generated from the registry and the whitespace method."""
    from features import whitespace  # the method is documented once, in that module

    lines = [
        "# Features",
        "",
        "Generated from `features/registry.py` by `features.registry.render_docs()`; do not edit by hand",
        "(`expansion features-docs` regenerates it; a test checks it is current).",
        "",
        "Every feature is computed at a snapshot date `as_of` from rows dated on or before `as_of`",
        "(timestamps: on or before the end of that day); a window `30d` covers the days",
        "`(as_of - 30, as_of]`. Percentages are 0-100. Absent optional tables give null features, never",
        "an error. Labels (`expanded`, `churned`, `contracted`, `expansion_mrr`) look forward over",
        "`(as_of, as_of + H]` and are null when `as_of + H` lies after the end of the data.",
        "",
        "Features know the account's age: a windowed feature of the usage, adoption, engagement and account",
        "families is null where its window reaches before the account's first day, because such a window is",
        "not a measurement (a 12-week slope of a 5-week-old customer). Usage features count from the account's",
        "first usage day (its first subscription day when it has not used the product yet); the others from",
        "its first subscription day on or before `as_of`. A trend needs both of its windows (`30d vs previous",
        "30d`: 60 days of life), the 12-week slope all 12 observed weeks. Features that read the latest row",
        "within a lookback (`365d`: latest NPS, days since the last touch) stay as they are.",
        "",
    ]
    for family in FAMILIES:
        lines += [f"## {family}", "", _FAMILY_NOTES[family], ""]
        lines += ["| name | concept | window | unit | good | kind | source | description | reason (comparison) |",
                  "|---|---|---|---|---|---|---|---|---|"]
        lines += [_feature_row(f) for f in FEATURES if f.family == family]
        lines.append("")
    lines += ["## Alert signals", "",
              "Computed by the same engine as the features (`build_features(..., signals=True)`, on every backend)",
              "and read by alert rules (`docs/alerts.md`); never model inputs, so a signal does not move a trained model.",
              "", "| name | concept | window | unit | good | kind | source | description |", "|---|---|---|---|---|---|---|---|"]
    lines += [_feature_row(f).rsplit(" | ", 1)[0] + " |" for f in SIGNAL_FEATURES]
    lines += ["", "## Whitespace method", ""]
    lines += [line[4:] if line.startswith("    ") else line for line in (whitespace.__doc__ or "").strip().splitlines()]
    lines += ["", *_reason_docs(), ""]
    return "\n".join(lines)


def _feature_row(f: FeatureSpec) -> str:
    from features.reason_catalog import CONCEPT_BY_NAME, TEMPLATE_BY_FEATURE

    template = TEMPLATE_BY_FEATURE.get(f.name)
    if CONCEPT_BY_NAME[f.concept].role == "context":
        reason = "context, never a reason"
    else:
        reason = f"{template.text} ({template.comparison})" if template else "-"
    return (f"| `{f.name}` | {f.concept} | {f.window} | {f.unit} | {f.good} | {f.kind} | {f.source} | "
            f"{f.description} | {reason} |")


def _reason_docs() -> list[str]:
    """Concepts and plays, from ``features.reason_catalog``."""
    from features import conditions
    from features import reason_catalog as rc

    lines = ["## Reasons and plays", ""]
    lines += [line[4:] if line.startswith("    ") else line for line in (rc.__doc__ or "").strip().splitlines()]
    lines += ["", "| concept | label | role | features |", "|---|---|---|---|"]
    for c in rc.CONCEPTS:
        names = ", ".join(f"`{f.name}`" for f in FEATURES if f.concept == c.name)
        lines.append(f"| {c.name} | {c.label} | {c.role} | {names} |")
    lines += ["", "| play | premise (any alternative, all of its conditions) | talk track |", "|---|---|---|"]
    lines += [f"| `{p.name}` | {p.premise_text()} | {p.talk_track} |" for p in rc.PLAYS]
    lines += ["", "## Named conditions", ""]
    lines += [line[4:] if line.startswith("    ") else line for line in (conditions.__doc__ or "").strip().splitlines()]
    lines += ["", *conditions.docs_table()]
    return lines
