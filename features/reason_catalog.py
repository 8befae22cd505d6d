"""What a CSM reads: concepts, reason templates and plays with their premises, declared once.

Every registered feature belongs to one *concept* (``features.registry.FeatureSpec.concept``).
A concept is either a *signal* a CSM can act on (usage trend, seats, quota, support,
sponsor, ...) or *context* (segment, industry, region, channel, tenure, size): context
can shape a score but is shown beside the reasons, never as one.

Each signal feature has one reason template, and every template carries a comparison a
CSM can judge:

* ``past``: the change on the account's own previous window, in % (``{direction} {change} %``);
* ``peers``: where the account sits within its segment at the same snapshot
  (``{rank}`` reads "top 5 %" / "bottom 20 %", ``{peers}`` "mid-market accounts");
* ``limit``: the share of a limit (plan quota, licensed seats, the plan's features) or,
  for whitespace, of the account's own ARR;
* ``timing``: a date of the account's own calendar (its renewal, its budget year), said as
  it is ("Renews in 5 days") and never ranked: everyone renews some day.

A peer comparison is shown only where it sets the account apart (the top or bottom
:data:`MAX_PEER_SHARE_PCT` of its peers), and every one names its peers ("of enterprise
accounts", "of all accounts" when the segment is too small to rank in). A count of zero is
never a reason ("0 bug tickets" says nothing), and a share of a limit must pass the floor
(:data:`LIMIT_FLOORS`) to lift a score and stay under it to hold one back.

Template fields: ``value`` (the value in its unit: money with thousands separators,
counts), ``pct`` (a 0-100 value rounded), ``ratio_pct`` (a 0-1 ratio as %), ``direction``
and ``change`` (sign and size of a move), ``when`` (a duration as people say it),
``share_of_arr``, ``rank``, ``p`` and ``peers``, ``s`` (a plural ending), ``detractor`` and
``alert_pct`` (the ``quota_alert_pct`` setting).
``docs/features.md`` shows each template.

Plays declare their premise as a rule over the account's own numbers (features, plus the
scorer's ``readiness_score`` and ``health``): a list of alternatives, each a list of
conditions that must all hold. A condition shared with the rule reasons and the alerts
("seats full", "near the plan's limit") is the named one of :mod:`features.conditions`,
whose threshold follows the setting in force. A play is recommended only when its premise
holds and every figure its talk track names is known.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from dataclasses import field as dataclass_field
from typing import Any, Literal

from features.conditions import OPS, level

Comparison = Literal["past", "peers", "limit", "timing"]
Role = Literal["signal", "context"]
Side = Literal["high", "low"]


@dataclass(frozen=True)
class Concept:
    """One thing a CSM talks about; ``role`` says whether it can be a reason."""

    name: str
    label: str
    role: Role = "signal"


CONCEPTS: tuple[Concept, ...] = (
    Concept("usage_volume", "usage volume"),
    Concept("usage_trend", "usage trend"),
    Concept("active_users", "active users"),
    Concept("seats", "seat use"),
    Concept("quota", "plan limit"),
    Concept("api_use", "API use"),
    Concept("breadth", "feature breadth"),
    Concept("upgrade_demand", "demand for higher-tier capabilities"),
    Concept("products", "products owned"),
    Concept("support", "support"),
    Concept("sentiment", "sentiment"),
    Concept("sponsor", "executive sponsor"),
    Concept("csm_contact", "CSM contact"),
    Concept("billing", "billing"),
    Concept("renewal_timing", "renewal timing"),
    Concept("budget_cycle", "budget cycle"),
    Concept("revenue_history", "revenue history"),
    Concept("whitespace", "whitespace"),
    Concept("segment", "segment", "context"),
    Concept("industry", "industry", "context"),
    Concept("region", "region", "context"),
    Concept("channel", "acquisition channel", "context"),
    Concept("tenure", "tenure", "context"),
    Concept("account_size", "account size", "context"),
    Concept("plan", "plan tier", "context"),
    Concept("pipeline", "deal in flight", "context"),
)
CONCEPT_BY_NAME: dict[str, Concept] = {c.name: c for c in CONCEPTS}


@dataclass(frozen=True)
class ReasonTemplate:
    """How one feature reads as a reason, with its comparison.

    ``side`` is for features whose good direction is neutral: which end of the peers is
    notable (a renewal is notable when it is soon). ``words`` name the high and the low end
    of a peer ranking ("top 5 %", "bottom 20 %").
    """

    feature: str
    comparison: Comparison
    text: str
    side: Side | None = None
    words: tuple[str, str] = ("top", "bottom")


def _peer(feature: str, text: str, side: Side | None = None) -> ReasonTemplate:
    return ReasonTemplate(feature, "peers", text + ", {rank} of {peers}", side)


def _past(feature: str, text: str) -> ReasonTemplate:
    return ReasonTemplate(feature, "past", text)


def _limit(feature: str, text: str) -> ReasonTemplate:
    return ReasonTemplate(feature, "limit", text)


# A peer comparison is a reason only when it singles the account out: "top 47 % of SMB accounts"
# sets nothing apart. At most this share of the peers may sit at or beyond the account's value.
MAX_PEER_SHARE_PCT = 20.0

# A share of a limit lifts readiness only from its floor, and holds it back only below it: "usage at
# 28 % of the plan's limit" is no reason to expand. Customers using under ~60 % of their tier's
# features rarely upgrade; 50 % of a quota is half-way to the conversation.
LIMIT_FLOORS: dict[str, float] = {"quota_utilization_30d_pct": 50.0, "seat_utilization_pct": 70.0,
                                  "feature_breadth_pct": 60.0}


REASON_TEMPLATES: tuple[ReasonTemplate, ...] = (
    # usage volume: raw counts only ever appear next to the peers they are ranked in
    _peer("events_7d", "{value} event{s} in 7 days"),
    _peer("events_30d", "{value} event{s} in 30 days"),
    _peer("events_90d", "{value} event{s} in 90 days"),
    _peer("active_days_30d", "Active on {value} of the last 30 days"),
    _peer("active_days_90d", "Active on {value} of the last 90 days"),
    _peer("dau_mau_30d", "Daily users are {ratio_pct} % of monthly users (30 days)"),
    _past("events_trend_30d_pct", "Usage {direction} {change} % on the previous 30 days"),
    _past("events_slope_12w_pct", "Usage {direction} {change} % a week over the last 12 weeks"),
    _peer("active_users_30d", "{value} active user{s} in 30 days"),
    _past("active_users_trend_30d_pct", "Active users {direction} {change} % on the previous 30 days"),
    _limit("seat_utilization_pct", "{pct} % of licensed seats in use (30 days)"),
    _limit("quota_utilization_30d_pct", "Usage at {pct} % of the plan's limit (30 days)"),
    _limit("days_over_quota_alert_30d",
           "At the pace of {alert_pct} % of the plan's limit or more on {value} of the last 30 days"),
    _peer("api_share_30d_pct", "API calls are {pct} % of usage (30 days)"),
    _limit("feature_breadth_pct", "Using {pct} % of the plan's features (30 days)"),
    _peer("features_used_30d", "{value} feature{s} used in 30 days"),
    _peer("features_new_30d", "{value} new feature{s} adopted in 30 days"),
    _peer("gated_feature_events_30d", "{value} event{s} on features above the plan in 30 days"),
    _peer("feature_request_tickets_90d", "{value} feature request{s} in 90 days"),
    _peer("products_owned", "Owns {value} product{s}"),
    _peer("tickets_30d", "{value} support ticket{s} in 30 days"),
    _peer("tickets_90d", "{value} support ticket{s} in 90 days"),
    _past("tickets_trend_30d_pct", "Support tickets {direction} {change} % on the previous 30 days"),
    _peer("urgent_tickets_30d", "{value} urgent ticket{s} in 30 days"),
    _peer("bug_tickets_90d", "{value} bug ticket{s} in 90 days"),
    _peer("outage_tickets_90d", "{value} outage ticket{s} in 90 days"),
    _peer("ticket_resolution_hours_90d", "Tickets took {value} hours to resolve on average (90 days)"),
    _peer("ticket_csat_90d", "Support CSAT {value} of 5 (90 days)"),
    _peer("csat_latest", "Latest CSAT {value} of 5"),
    _peer("nps_latest", "Latest NPS {value} of 10"),
    _peer("nps_change", "NPS {direction} {change} points on the previous response"),
    ReasonTemplate("nps_detractor", "peers", "{detractor}, like {p} % of {peers}"),
    _peer("exec_meetings_90d", "{value} executive meeting{s} in 90 days"),
    _peer("exec_meetings_180d", "{value} executive meeting{s} in 180 days"),
    _peer("qbrs_180d", "{value} QBR{s} in 180 days"),
    ReasonTemplate("days_since_exec_touch", "peers", "Last executive contact {when} ago, {rank} of {peers}",
                   words=("longest-ago", "most recent")),
    ReasonTemplate("days_since_last_touch", "peers", "Last CSM touch {when} ago, {rank} of {peers}",
                   words=("longest-ago", "most recent")),
    _peer("payment_failures_90d", "{value} failed payment{s} in 90 days"),
    _peer("late_payments_90d", "{value} late payment{s} in 90 days"),
    ReasonTemplate("months_to_renewal", "timing", "Renews in {when}", "low"),
    ReasonTemplate("months_to_fiscal_year_start", "timing", "Customer's budget year starts in {when}", "low"),
    _peer("expansions_past", "{value} past expansion{s}"),
    _peer("contractions_past", "{value} past contraction{s}"),
    ReasonTemplate("months_since_last_expansion", "peers", "Last expansion {when} ago, {rank} of {peers}", "low",
                   words=("longest-ago", "most recent")),
    _past("mrr_growth_180d_pct", "MRR {direction} {change} % on 180 days ago"),
    _limit("whitespace_usd", "{value} a year of whitespace, {share_of_arr} % of current ARR"),
    _limit("whitespace_seats_usd", "{value} a year in seats peers license, {share_of_arr} % of current ARR"),
    _limit("whitespace_products_usd", "{value} a year in products peers own, {share_of_arr} % of current ARR"),
    _limit("whitespace_tier_usd", "{value} a year to the next tier, {share_of_arr} % of current ARR"),
)
TEMPLATE_BY_FEATURE: dict[str, ReasonTemplate] = {t.feature: t for t in REASON_TEMPLATES}

SEGMENT_LABELS: dict[str, str] = {"smb": "SMB", "mid_market": "mid-market", "enterprise": "enterprise"}
CURRENCY_SYMBOL = "$"

# ----- plays ---------------------------------------------------------------------------------

@dataclass(frozen=True)
class Condition:
    """``field op threshold`` over one account's numbers; an unknown value never holds.

    ``level`` names the condition of :mod:`features.conditions` it is (then ``threshold`` is its
    default and ``levels``, the thresholds in force, may replace it)."""

    field: str
    op: str
    threshold: Any
    level: str | None = dataclass_field(default=None, compare=False)

    def holds(self, facts: Mapping[str, Any], levels: Mapping[str, float] | None = None) -> bool:
        """True when the account's value is known and meets the threshold (the one in force for a named level)."""
        value = facts.get(self.field)
        if value is None or (isinstance(value, float) and value != value):
            return False
        return bool(OPS[self.op](value, self.threshold_in(levels)))

    def threshold_in(self, levels: Mapping[str, float] | None) -> Any:
        """The threshold in force: the named level's from ``levels`` when given, else the declared one."""
        return levels[self.level] if levels is not None and self.level in levels else self.threshold

    def __str__(self) -> str:
        t = f"{self.threshold:g}" if isinstance(self.threshold, float) else str(self.threshold)
        return f"{self.field} {self.op} {t}" + (f" ({self.level})" if self.level else "")


@dataclass(frozen=True)
class Play:
    """A play: its headline, the effect it serves, its premise (any of all-of conditions) and talk track."""

    name: str
    headline: str
    effect: Literal["expansion", "churn_risk", "either"]
    premise: tuple[tuple[Condition, ...], ...]
    talk_track: str

    def premise_holds(self, facts: Mapping[str, Any], levels: Mapping[str, float] | None = None) -> bool:
        """True when one alternative of the premise holds entirely (an empty premise always holds); ``levels``:
        the thresholds in force (:func:`features.conditions.thresholds`), the defaults when None."""
        return not self.premise or any(all(c.holds(facts, levels) for c in alt) for alt in self.premise)

    def premise_text(self) -> str:
        """The premise as people read it: alternatives joined by 'or'."""
        return " or ".join(" and ".join(map(str, alt)) for alt in self.premise) or "always"


def _when(*alternatives: tuple[str, str, Any]) -> tuple[tuple[Condition, ...], ...]:
    return tuple((Condition(*alt),) for alt in alternatives)


def at(name: str) -> Condition:
    """The named condition of :mod:`features.conditions` (its threshold follows the setting in force)."""
    lv = level(name)
    return Condition(lv.feature, lv.op, lv.default, lv.name)


PLAYS: tuple[Play, ...] = (
    Play("upgrade_conversation", "Upgrade conversation: the account is near its plan limit.", "expansion",
         ((at("near_quota"), Condition("whitespace_tier_usd", ">", 0)),),
         "The account used {events_30d} events in the last 30 days, {quota_pct} % of its plan's limit of "
         "{event_limit} a month. The next tier lifts that limit for {tier_step_per_seat} more per seat a month at "
         "list price, {tier_annual} a year for its {seats} seats. Open with what the team is building that drives "
         "the growth, then show what the next tier unlocks before the limit slows them down; the account's "
         "whitespace in all is {whitespace} a year."),
    Play("seat_expansion", "Seat expansion: licensed seats are nearly all in use.", "expansion",
         ((at("seats_full"), Condition("seats", ">", 0)),),
         "{active_users_30d} people used the product in the last 30 days on {seats} licensed seats "
         "({seat_pct} % in use), so the next colleagues to join will find no seat free. Ask which teams are "
         "coming on board and offer seats ahead of them: each extra seat costs {price_per_seat} a month at the "
         "account's current price, and the account's whitespace in all is {whitespace} a year."),
    Play("cross_sell", "Cross-sell: similar accounts own products this one does not.", "expansion",
         _when(("whitespace_products_usd", ">", 0)),
         "Similar {peer_accounts} own products this account does not yet have; weighted by how often those "
         "peers buy them, that is {products_whitespace} a year. The account owns {products_owned} "
         "product(s) today. Ask which workflows sit outside the product now and show how peers cover them."),
    Play("expansion_conversation", "Proactive expansion conversation: readiness is high.", "expansion",
         ((Condition("readiness_score", ">=", 70), Condition("whitespace_usd", ">", 0)),),
         "Readiness is {readiness} of 100: this account is readier to expand than {readiness} % of all accounts. "
         "Its whitespace is {whitespace} a year, {whitespace_share_of_arr} % of its current ARR of {arr}. "
         "Book a conversation about the next stage of their rollout and which teams or products come next."),
    Play("executive_check_in", "Executive check-in: re-establish the relationship with the customer's sponsor.",
         "churn_risk", _when(("days_since_exec_touch", ">=", 90), ("exec_meetings_180d", "<=", 0)),
         "{exec_contact}, with {exec_meetings_180d} executive meetings in 180 days. Ask the account team who the "
         "sponsor is today and book a short check-in on the outcomes they bought the product for."),
    Play("billing_follow_up", "Billing follow-up: payments are failing or late; resolve before the renewal.",
         "churn_risk", _when(("payment_failures_90d", ">=", 1), ("late_payments_90d", ">=", 1)),
         "{payment_facts} in the last 90 days, and {renewal}. "
         "Call the billing contact, confirm the payment method and the invoice address, and agree how the open "
         "invoices are settled before the renewal conversation starts."),
    Play("support_escalation", "Support escalation review: tickets are piling up or severe.", "churn_risk",
         _when(("urgent_tickets_30d", ">=", 1), ("outage_tickets_90d", ">=", 1), ("tickets_trend_30d_pct", ">=", 50)),
         "{ticket_facts}. Review the open tickets with support before the next call, name an owner for each, "
         "and tell the customer what is fixed and by when."),
    Play("success_plan_review", "Success-plan review: churn risk is high; agree outcomes and next steps.", "churn_risk",
         _when(("health", "==", "red"), ("nps_detractor", ">=", 1)),
         "Health is {health}: {risk_facts}. Meet the customer's owner, review the outcomes of the success plan "
         "against what they get today, and agree two or three next steps with dates."),
    Play("adoption_drive", "Adoption drive: training and use-case education before any expansion talk.", "either",
         ((Condition("feature_breadth_pct", "<", 60),), (at("usage_falling"),), (at("seats_idle"),)),
         "{adoption_facts}. Offer a training session for the teams that use the product least and one use case "
         "peers get value from; talk about expansion once more of what they pay for is in use."),
    Play("nurture_value_content", "Nurture: share value content and new use cases.", "either", (),
         "Readiness is {readiness} of 100 and health is {health}. Share one piece of value content and a use case "
         "that similar {peer_accounts} run, and check in again after the next scoring run."),
)
PLAY_BY_NAME: dict[str, Play] = {p.name: p for p in PLAYS}

# Which play a reason of each concept leads to, by the effect the reason pushes towards.
# Whitespace leads to the play of its largest part (see serving.scoring.plays).
PLAY_FOR_CONCEPT: dict[tuple[str, str], str] = {
    ("quota", "expansion"): "upgrade_conversation",
    ("upgrade_demand", "expansion"): "upgrade_conversation",
    ("api_use", "expansion"): "upgrade_conversation",
    ("seats", "expansion"): "seat_expansion",
    ("active_users", "expansion"): "seat_expansion",
    ("products", "expansion"): "cross_sell",
    ("usage_volume", "expansion"): "expansion_conversation",
    ("usage_trend", "expansion"): "expansion_conversation",
    ("breadth", "expansion"): "expansion_conversation",
    ("renewal_timing", "expansion"): "expansion_conversation",
    ("budget_cycle", "expansion"): "expansion_conversation",
    ("sponsor", "churn_risk"): "executive_check_in",
    ("csm_contact", "churn_risk"): "executive_check_in",
    ("billing", "churn_risk"): "billing_follow_up",
    ("support", "churn_risk"): "support_escalation",
    ("sentiment", "churn_risk"): "success_plan_review",
    ("usage_volume", "churn_risk"): "adoption_drive",
    ("usage_trend", "churn_risk"): "adoption_drive",
    ("active_users", "churn_risk"): "adoption_drive",
    ("seats", "churn_risk"): "adoption_drive",
    ("breadth", "churn_risk"): "adoption_drive",
    ("renewal_timing", "churn_risk"): "success_plan_review",
}
PLAY_FOR_WHITESPACE_PART: dict[str, str] = {
    "whitespace_seats_usd": "seat_expansion",
    "whitespace_products_usd": "cross_sell",
    "whitespace_tier_usd": "upgrade_conversation",
}
BAND_PLAYS: dict[str, str] = {"outreach": "expansion_conversation", "nurture": "nurture_value_content",
                              "adoption": "adoption_drive"}
RISK_FALLBACK = "success_plan_review"
LAST_RESORT = "nurture_value_content"

# ----- cautions ------------------------------------------------------------------------------
# Churn-side warnings an expansion play must not hide: the CSM hears them before raising an
# upgrade. Falling usage and a failed payment also keep upsell plays from going first unless
# the model's churn risk is low (serving.scoring.plays).

@dataclass(frozen=True)
class Caution:
    """A churn-side warning: when it holds (any alternative), and whether it blocks upsell plays."""

    name: str
    premise: tuple[tuple[Condition, ...], ...]
    blocks_upsell: bool


CAUTIONS: tuple[Caution, ...] = (
    Caution("usage_falling", ((at("usage_falling"),), (at("usage_sliding"),)), True),
    Caution("payment_failed", ((Condition("payment_failures_90d", ">=", 1),),), True),
    Caution("detractor", ((Condition("nps_detractor", ">=", 1),),), False),
    Caution("executive_silence", ((at("executive_silence"),),), False),
)
