"""Readable reasons from model contributions (the play to run next is in :mod:`serving.plays`).

Pure functions of feature values and their contributions: no model, no I/O. The wording
of a reason comes from a template for the features CSMs talk about most (quota, seats,
user growth, tickets, sponsor contact, payments) and otherwise from the feature registry
(description, unit), so that every feature can explain itself.

A positive contribution alone does not make a readable driver: the registry says which
direction of each feature is good, and a reason is shown only when the value sits on the
side that pushes towards its effect (:func:`supports`): a decline is never a reason for
readiness, "no executive meetings" never one for expansion, and a change too small to be
a trend is no driver at all. :func:`explain` ranks one row; :func:`explain_rows` ranks a
whole matrix of contributions at once and gives the same reasons.
"""

from __future__ import annotations

import math
import numbers
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

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


def _days_since(what: str) -> Callable[[float], str]:
    return lambda v: f"{what[0].upper()}{what[1:]} today" if v < 1 else f"{_num(v)} day{'' if v == 1 else 's'} since {what}"


def _months(v: float) -> str:
    return f"{_num(v)} month{'' if v == 1 else 's'}"


TEMPLATES: dict[str, Callable[[float], str]] = {
    "quota_utilization_30d_pct": lambda v: f"Usage at {v:.0f} % of plan limit (30 days)",
    "days_over_quota_alert_30d": lambda v: f"{_num(v)} days near the plan limit in 30 days",
    "seat_utilization_pct": lambda v: f"{v:.0f} % of licensed seats active",
    "active_users_trend_30d_pct": _change("Active users", "30 days"),
    "events_trend_30d_pct": _change("Usage", "30 days"),
    "events_slope_12w_pct": lambda v: f"Usage {'growing' if v >= 0 else 'shrinking'} {abs(v):.0f} % a week over 12 weeks",
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
    "days_since_exec_touch": _days_since("the last executive contact"),
    "days_since_last_touch": _days_since("the last CSM touch"),
    "nps_latest": lambda v: f"Latest NPS score {_num(v)}",
    "nps_change": lambda v: f"NPS {'up' if v >= 0 else 'down'} {abs(v):.0f} points",
    "nps_detractor": lambda v: "Detractor NPS response" if v else "No detractor NPS response",
    "csat_latest": lambda v: f"Latest CSAT {v:.1f} of 5",
    "whitespace_usd": lambda v: f"${v:,.0f} of whitespace",
    "whitespace_seats_usd": lambda v: f"${v:,.0f} whitespace in unlicensed seats",
    "whitespace_products_usd": lambda v: f"${v:,.0f} whitespace in products not yet owned",
    "whitespace_tier_usd": lambda v: f"${v:,.0f} headroom to the next tier",
    "months_to_renewal": lambda v: f"Renewal in {_months(v)}",
    "months_to_fiscal_year_start": lambda v: f"Customer's fiscal year starts in {_months(v)}",
    "months_since_last_expansion": lambda v: f"Last expansion {_months(v)} ago",
    "events_7d": _count("event", "events", "7 days"),
    "events_30d": _count("event", "events", "30 days"),
    "events_90d": _count("event", "events", "90 days"),
    "active_days_30d": lambda v: f"Active on {_num(v)} of the last 30 days",
    "active_days_90d": lambda v: f"Active on {_num(v)} of the last 90 days",
    "active_users_30d": _count("active user", "active users", "30 days"),
    "dau_mau_30d": lambda v: f"Daily active users are {100 * v:.0f} % of monthly (30 days)",
    "features_used_30d": _count("feature used", "features used", "30 days"),
    "gated_feature_events_30d": _count("event on features above the plan", "events on features above the plan",
                                       "30 days"),
    "plan_tier_rank": lambda v: f"On plan tier {_num(v)}",
    "tickets_90d": _count("support ticket", "support tickets", "90 days"),
    "ticket_resolution_hours_90d": lambda v: f"Tickets took {_num(v)} hours to resolve on average (90 days)",
    "ticket_csat_90d": lambda v: f"Support CSAT {v:.1f} of 5 (90 days)",
    "contractions_past": _count("past contraction", "past contractions", "the account's history"),
    "products_owned": lambda v: f"Owns {_num(v)} product{'s' if v != 1 else ''}",
    "expansions_past": _count("past expansion", "past expansions", "the account's history"),
    "tenure_months": lambda v: f"Customer for {_num(v)} months",
    "arr": lambda v: f"ARR ${v:,.0f}",
    "mrr": lambda v: f"MRR ${v:,.0f}",
    "seats": lambda v: f"{_num(v)} licensed seats",
    "employees": lambda v: f"{_num(v)} employees",
}


def _missing(value: Any) -> bool:
    if isinstance(value, float):  # the common case first: numpy floats are floats too
        return math.isnan(value)
    if value is None or value is pd.NA or value is pd.NaT:
        return True
    return isinstance(value, numbers.Real) and not isinstance(value, bool) and math.isnan(value)


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
    return _text(feature, value, spec)


def _text(feature: str, value: Any, spec: Any | None) -> str:
    template = TEMPLATES.get(feature)
    if template is not None and not isinstance(value, str):
        return template(float(value))
    return _generic_text(feature, value, spec)


# A move smaller than this is noise, not a driver: usage and ticket counts swing a few
# percent from one month to the next on their own. Keyed by the unit of the change.
MIN_MOVE_BY_UNIT: dict[str, float] = {"%": 5.0, "% per week": 1.0, "points": 1.0}
_CHANGE_MARKERS = ("_trend_", "_slope_", "_growth_", "_change")


def is_change(feature: str, spec: Any | None = None) -> bool:
    """True for features that measure a move (trend, slope, growth, change) rather than a level."""
    window = str(getattr(spec, "window", "") or "")
    return " vs " in window or any(m in feature for m in _CHANGE_MARKERS)


def supports(feature: str, values: Any, effect: str, spec: Any | None = None, typical: float | None = None) -> np.ndarray:
    """Which ``values`` of ``feature`` read as a driver of ``effect`` (a boolean array).

    Unknown values never do. For a feature whose good direction the registry knows, an
    expansion driver must sit on the good side and a churn-risk driver on the bad side:
    a change must move that way by at least :data:`MIN_MOVE_BY_UNIT`; a level (count,
    amount, share: 0 is its floor) must be above 0 to read as high and, when ``typical``
    (the book's median) is known, on that side of it. Neutral features always may.
    """
    values = np.asarray(values)
    kind = getattr(spec, "kind", "numeric")
    if values.dtype.kind not in "fiub":
        if kind == "categorical" or values.dtype.kind in "US":
            return ~pd.isna(values)
        values = pd.to_numeric(pd.Series(values, dtype=object), errors="coerce").to_numpy(dtype=float)
    values = values.astype(float)
    known = ~np.isnan(values)
    good = getattr(spec, "good", "neutral")
    if good not in ("higher", "lower"):
        return known
    wants_high = (good == "higher") == (effect == EXPANSION)
    with np.errstate(invalid="ignore"):
        if is_change(feature, spec):
            min_move = MIN_MOVE_BY_UNIT.get(str(getattr(spec, "unit", "%")), MIN_MOVE_BY_UNIT["%"])
            return known & (values >= min_move if wants_high else values <= -min_move)
        has_typical = typical is not None and not math.isnan(typical)
        if wants_high:
            return known & (values > 0) & (values >= typical if has_typical else True)
        return known & (values <= typical if has_typical else True)


def explain_rows(
    values: Mapping[str, np.ndarray],
    contributions: Mapping[str, tuple[Sequence[str], np.ndarray]],
    specs: Mapping[str, Any] | None = None,
    top_k: int = 5,
    typical: Mapping[str, float] | None = None,
) -> list[list[ReasonItem]]:
    """Top drivers of many rows at once, strongest first, ranked with numpy.

    ``values`` holds one array per feature column (absent columns are unknown);
    ``contributions`` maps an effect to (feature names, rows x features matrix). Only the
    ``top_k`` chosen reasons per row are formatted, so the cost is one argsort plus k texts.
    """
    specs = specs or {}
    names, best, which = _strongest(values, contributions, specs, typical or {})
    effects = list(contributions)
    order = np.argsort(-best, axis=1, kind="stable")[:, :top_k]
    out: list[list[ReasonItem]] = []
    for r in range(len(best)):
        items = []
        for j in order[r]:
            c = best[r, j]
            if c == -np.inf:
                break
            f = names[j]
            # supports() already ruled out unknown values, so the text needs no second check
            items.append(ReasonItem(_text(f, values[f][r], specs.get(f)), f, effects[which[r, j]], round(float(c), 4)))
        out.append(items)
    return out


def _strongest(
    values: Mapping[str, np.ndarray],
    contributions: Mapping[str, tuple[Sequence[str], np.ndarray]],
    specs: Mapping[str, Any],
    typical: Mapping[str, float],
) -> tuple[list[str], np.ndarray, np.ndarray]:
    """(feature names, rows x names matrix of each feature's strongest admissible contribution
    (-inf: no driver), index of the effect it came from)."""
    names = list(dict.fromkeys(f for fs, _ in contributions.values() for f in fs if f in values))
    n = len(next(iter(contributions.values()))[1]) if contributions else 0
    best = np.full((n, len(names)), -np.inf)
    which = np.zeros((n, len(names)), dtype=np.int8)
    position = {f: j for j, f in enumerate(names)}
    for e, (effect, (features, matrix)) in enumerate(contributions.items()):
        for col, feature in enumerate(features):
            if feature not in position:
                continue
            j = position[feature]
            c = np.asarray(matrix[:, col], dtype=float)
            admissible = (c > 0) & supports(feature, values[feature], effect, specs.get(feature), typical.get(feature))
            c = np.where(admissible, c, -np.inf)
            stronger = c > best[:, j]  # strict: on a tie the earlier effect keeps the feature
            best[:, j] = np.where(stronger, c, best[:, j])
            which[:, j] = np.where(stronger, e, which[:, j])
    return names, best, which


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
