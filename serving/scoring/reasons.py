"""Readable reasons from model contributions (the play to run next is in :mod:`serving.scoring.plays`).

Pure functions of feature values and their contributions: no model, no I/O. A CSM reads a
short list of distinct signals, so reasons are chosen by *concept* (the registry gives every
feature one, :mod:`features.reason_catalog` declares them): the contributions of a concept's
features that push the same way add up, each concept gives at most one reason (worded by
its strongest feature), and the concepts are ranked by their summed contribution. Context
concepts (segment, industry, region, channel, tenure, size, plan) shape scores but are never
reasons. Every reason is worded from its declared template with a comparison: the
account's own past, its peers in the segment (:mod:`serving.scoring.peers`), or a limit.

A positive contribution alone does not make a readable driver: the registry says which
direction of each feature is good, and a reason is shown only when the value sits on the
side that pushes towards its effect (:func:`supports`): a decline is never a reason for
readiness, "no executive meetings" never one for expansion, and a change too small to be
a trend is no driver at all.
"""

from __future__ import annotations

import math
import numbers
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from typing import Any

import numpy as np
import pandas as pd

from features.conditions import OPS, thresholds
from features.reason_catalog import (
    CONCEPT_BY_NAME,
    CURRENCY_SYMBOL,
    LIMIT_FLOORS,
    MAX_PEER_SHARE_PCT,
    TEMPLATE_BY_FEATURE,
    Condition,
    at,
)
from features.registry import FEATURES
from serving.scoring.peers import Peers, peers_label
from serving.scoring.wording import DEFAULT_ALERT_PCT, reason_fields, render

EXPANSION, CHURN_RISK = "expansion", "churn_risk"
_REGISTRY = {f.name: f for f in FEATURES}


def _with_registry(specs: Mapping[str, Any] | None) -> dict[str, Any]:
    """``specs`` over the registry: a feature nobody specified reads as the registry declares it."""
    return {**_REGISTRY, **(specs or {})}


@dataclass(frozen=True)
class ReasonItem:
    """One driver: readable text, the feature and concept behind it, the outcome it pushes towards."""

    text: str
    feature: str
    effect: str
    contribution: float | None
    concept: str = ""
    comparison: str = ""
    side: str = ""  # lifts / holds_back; by default from the effect and the contribution's sign

    def __post_init__(self) -> None:
        if not self.side:
            lifts = self.effect == EXPANSION and not (self.contribution is not None and self.contribution < 0)
            object.__setattr__(self, "side", "lifts" if lifts else "holds_back")

    def as_dict(self) -> dict[str, Any]:
        return {"text": self.text, "feature": self.feature, "effect": self.effect, "contribution": self.contribution,
                "concept": self.concept, "comparison": self.comparison, "side": self.side}


def _missing(value: Any) -> bool:
    if isinstance(value, float):  # the common case first: numpy floats are floats too
        return math.isnan(value)
    if value is None or value is pd.NA or value is pd.NaT:
        return True
    return isinstance(value, numbers.Real) and not isinstance(value, bool) and math.isnan(value)


def concept_of(feature: str, spec: Any | None) -> str | None:
    """The concept of a feature when it can be a reason (a signal with a template), else None."""
    concept = getattr(spec, "concept", "") or ""
    if CONCEPT_BY_NAME.get(concept) is None or CONCEPT_BY_NAME[concept].role != "signal":
        return None
    return concept if feature in TEMPLATE_BY_FEATURE else None


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


def _reads_high(feature: str, effect: str, spec: Any | None) -> bool:
    """Whether a reason of ``effect`` reads ``feature`` as high (else low) among peers."""
    template = TEMPLATE_BY_FEATURE.get(feature)
    if template is not None and template.side is not None:
        return template.side == "high"
    good = getattr(spec, "good", "neutral")
    return good == "neutral" or (good == "higher") == (effect == EXPANSION)


# Units of counts: a count of zero is never a reason ("0 bug tickets in 90 days" sets nothing apart).
COUNT_UNITS = frozenset({"events", "days", "users", "features", "products", "tickets", "meetings", "invoices",
                         "movements", "flag 0/1"})


def is_count(feature: str, spec: Any | None) -> bool:
    """True for a count (events, tickets, meetings, a 0/1 flag): its zero is no reason."""
    unit = str(getattr(spec, "unit", "") or "")
    return unit in COUNT_UNITS and not feature.startswith("days_since") and not is_change(feature, spec)


def admissible(feature: str, values: Any, effect: str, spec: Any | None, typical: float | None,
               arr: np.ndarray | None = None) -> np.ndarray:
    """:func:`supports`, plus what the wording needs: a neutral feature must sit on its notable side
    of the book's median (a renewal is a reason when it is sooner than typical), a count must not
    be zero, a share of a limit must pass its floor to lift (stay under it to hold back), and a
    whitespace amount needs a known ARR to be compared with. ``effect`` is the direction: the
    effect whose driver the value must read as (expansion: lifts readiness)."""
    ok = supports(feature, values, effect, spec, typical)
    if ok.any() and is_count(feature, spec):
        v = np.asarray(values, dtype=float)
        with np.errstate(invalid="ignore"):
            ok = ok & (v != 0)
    if ok.any() and feature in LIMIT_FLOORS:
        v = np.asarray(values, dtype=float)
        with np.errstate(invalid="ignore"):
            ok = ok & (v >= LIMIT_FLOORS[feature] if effect == EXPANSION else v < LIMIT_FLOORS[feature])
    template = TEMPLATE_BY_FEATURE.get(feature)
    if template is not None and template.side is not None and typical is not None and not math.isnan(typical):
        v = np.asarray(values, dtype=float)
        with np.errstate(invalid="ignore"):
            ok = ok & (v <= typical if template.side == "low" else v >= typical)
    if template is not None and "{share_of_arr}" in template.text:
        a = np.full(len(ok), np.nan) if arr is None else np.asarray(arr, dtype=float)
        ok = ok & (np.nan_to_num(a) > 0)
    return ok


# Which side of the score a contribution stands on. The sign is against the model's base value
# (LightGBM's contributions sum to the raw score minus the mean raw score of the training rows):
# an expansion contribution above 0 lifts readiness, below 0 holds it back; a churn-risk
# contribution above 0 holds the account back too (a risk). With no expansion model, a churn
# contribution below 0 (a strength) lifts.
LIFTS, HOLDS_BACK = "lifts", "holds_back"
SIDES = (LIFTS, HOLDS_BACK)


def side_of(effect: str, contribution: float, expansion_model: bool = True) -> str | None:
    """The side a signed contribution of ``effect``'s model stands on (None: it stands on none)."""
    if contribution == 0 or contribution != contribution:
        return None
    if effect == EXPANSION:
        return LIFTS if contribution > 0 else HOLDS_BACK
    if contribution > 0:
        return HOLDS_BACK
    return None if expansion_model else LIFTS


# A concept whose contributions add up to less than this (raw log-odds units) moves no score: it is
# no driver on either side, and its rounded contribution could not even show a sign.
MIN_STRENGTH = 1e-3


def _lanes(effects: Sequence[str]) -> list[tuple[int, float, int, str]]:
    """(effect index, sign, side index, direction) for each way a contribution can be a reason; the
    direction is the effect whose good side the value must sit on (:func:`supports`)."""
    lanes: list[tuple[int, float, int, str]] = []
    for e, effect in enumerate(effects):
        for sign in (1.0, -1.0):
            side = side_of(effect, sign, EXPANSION in effects)
            if side is not None:
                lanes.append((e, sign, SIDES.index(side), EXPANSION if side == LIFTS else CHURN_RISK))
    return lanes


def explain_rows(
    values: Mapping[str, np.ndarray],
    contributions: Mapping[str, tuple[Sequence[str], np.ndarray]],
    specs: Mapping[str, Any] | None = None,
    top_k: int = 3,
    typical: Mapping[str, float] | None = None,
    peers: Peers | None = None,
    symbol: str = CURRENCY_SYMBOL,
    alert_pct: float = DEFAULT_ALERT_PCT,
) -> list[list[ReasonItem]]:
    """Reasons of many rows, on both sides of the score: per side at most one per concept and ``top_k``.

    ``values`` holds one array per feature column (absent columns are unknown; ``segment`` and
    ``arr`` are read for the comparisons); ``contributions`` maps an effect to (feature names,
    rows x features matrix), signed against the model's base value. Each contribution stands on
    a side (:func:`side_of`); a concept's strength on a side is the sum of its admissible
    (:func:`admissible`) contributions there, from the model that gives the most, and it is shown
    on its stronger side only, worded by its strongest feature. A row's reasons come strongest
    first, both sides mixed; ``ReasonItem.side`` tells them apart. ``peers`` ranks values within
    the segment (default: the rows themselves).
    """
    specs, typical = _with_registry(specs), typical or {}
    effects = list(contributions)
    names = [f for f in dict.fromkeys(f for fs, _ in contributions.values() for f in fs)
             if f in values and concept_of(f, specs.get(f))]
    n = len(next(iter(contributions.values()))[1]) if contributions else 0
    if not names or not n:
        return [[] for _ in range(n)]
    if peers is None:  # rank within the rows themselves
        peers = Peers.of(pd.DataFrame(dict(values)), [f for f in values if f in TEMPLATE_BY_FEATURE])
    segments = values.get("segment", np.full(n, None, dtype=object))
    concepts = list(dict.fromkeys(concept_of(f, specs.get(f)) for f in names))
    columns = [np.array([j for j, f in enumerate(names) if concept_of(f, specs.get(f)) == c]) for c in concepts]
    arr = values.get("arr")
    lanes = _lanes(effects)
    adm = np.zeros((len(lanes), n, len(names)))
    position = {f: j for j, f in enumerate(names)}
    for lane, (e, sign, _, direction) in enumerate(lanes):
        features, matrix = contributions[effects[e]]
        for col, feature in enumerate(features):
            j = position.get(feature)
            if j is None:
                continue
            c = sign * np.asarray(matrix[:, col], dtype=float)
            ok = (c > 0) & admissible(feature, values[feature], direction, specs.get(feature), typical.get(feature), arr)
            if TEMPLATE_BY_FEATURE[feature].comparison == "peers" and ok.any():
                ok &= _stands_out(peers, feature, segments, values[feature], _reads_high(feature, direction, specs.get(feature)))
            adm[lane, :, j] = np.where(ok, c, 0.0)
    totals = np.stack([adm[:, :, cols].sum(axis=2) for cols in columns], axis=2)  # lanes x rows x concepts
    reps = np.stack([cols[adm[:, :, cols].argmax(axis=2)] for cols in columns], axis=2)
    lane_side = np.array([lane[2] for lane in lanes])
    side_total = np.zeros((len(SIDES), n, len(concepts)))
    side_lane = np.zeros((len(SIDES), n, len(concepts)), dtype=int)
    for s in range(len(SIDES)):
        ids = np.flatnonzero(lane_side == s)
        if len(ids):
            best = totals[ids].argmax(axis=0)  # on a tie the first model keeps the concept
            side_lane[s], side_total[s] = ids[best], np.take_along_axis(totals[ids], best[None], 0)[0]
    concept_side = side_total.argmax(axis=0)  # a concept stands on its stronger side only
    chosen: list[tuple[int, str, int, str, float]] = []
    for s in range(len(SIDES)):
        strength = np.where(concept_side == s, side_total[s], 0.0)
        order = np.argsort(-strength, axis=1, kind="stable")[:, :top_k]
        for r in range(n):
            for k in order[r]:
                if strength[r, k] < MIN_STRENGTH:
                    break
                lane = side_lane[s, r, k]
                chosen.append((r, names[reps[lane, r, k]], lane, concepts[k], float(strength[r, k])))
    chosen.sort(key=lambda c: (c[0], -c[4]))
    picked = [(r, f, lanes[lane][0], lanes[lane][3], SIDES[lanes[lane][2]], concept, lanes[lane][1] * strength)
              for r, f, lane, concept, strength in chosen]
    return _worded(picked, n, values, effects, specs, peers, symbol, alert_pct)


def _stands_out(peers: Peers, feature: str, segments: np.ndarray, values: np.ndarray, high: bool) -> np.ndarray:
    """Rows whose value lies within the top (``high``) or bottom :data:`MAX_PEER_SHARE_PCT` of their peers."""
    share = peers.share_beyond(feature, peers.groups_of(feature, segments), np.asarray(values, dtype=float),
                               np.full(len(values), high))
    with np.errstate(invalid="ignore"):
        return share <= MAX_PEER_SHARE_PCT


def _worded(chosen: list[tuple[int, str, int, str, str, str, float]], n: int, values: Mapping[str, np.ndarray],
            effects: Sequence[str], specs: Mapping[str, Any], peers: Peers | None,
            symbol: str = CURRENCY_SYMBOL, alert_pct: float = DEFAULT_ALERT_PCT) -> list[list[ReasonItem]]:
    """Fill each chosen (row, feature, effect index, direction, side, concept, signed contribution) into its
    template; peers ranked per feature, at the end the direction reads as good or bad."""
    if peers is None:  # rank within the rows themselves
        peers = Peers.of(pd.DataFrame(dict(values)), [f for f in values if f in TEMPLATE_BY_FEATURE])
    segments = values.get("segment")
    rows = np.array([c[0] for c in chosen], dtype=int)
    features = np.array([c[1] for c in chosen], dtype=object)
    p = np.full(len(chosen), np.nan)
    high = np.array([_reads_high(c[1], c[3], specs.get(c[1])) for c in chosen], dtype=bool)
    groups = np.full(len(chosen), "*", dtype=object)
    for feature in dict.fromkeys(features.tolist()):
        if TEMPLATE_BY_FEATURE[feature].comparison != "peers":
            continue
        at = np.flatnonzero(features == feature)
        segs = segments[rows[at]] if segments is not None else [None] * len(at)
        groups[at] = peers.groups_of(feature, segs)
        p[at] = peers.share_beyond(feature, groups[at], np.asarray(values[feature], dtype=float)[rows[at]], high[at])
    out: list[list[ReasonItem]] = [[] for _ in range(n)]
    arr = values.get("arr")
    for i, (r, feature, e, _, side, concept, contribution) in enumerate(chosen):
        template, spec = TEMPLATE_BY_FEATURE[feature], specs.get(feature)
        fields = reason_fields(template, float(values[feature][r]), str(getattr(spec, "unit", "") or ""),
                               arr=None if arr is None else float(arr[r]), p=p[i], high=bool(high[i]),
                               peers=peers_label(groups[i]), symbol=symbol, alert_pct=alert_pct)
        text = render(template, fields)
        if text is not None:
            out[r].append(ReasonItem(text, feature, effects[e], round(contribution, 4), concept, template.comparison,
                                     side))
    return out


# Rule reasons explain the baseline when no model is deployed. A rule is a condition on one
# feature: the named ones (``at``) are those of features.conditions, shared with the plays and
# the alerts and following the settings in force (near the plan's limit: ``quota_alert_pct``).
# Ordered by how urgently a CSM should hear them. An expansion rule lifts readiness; a
# churn-risk rule holds the account back.
RULES: tuple[tuple[Condition, str], ...] = (
    (Condition("payment_failures_90d", ">=", 1), CHURN_RISK),
    (Condition("urgent_tickets_30d", ">=", 1), CHURN_RISK),
    (Condition("nps_detractor", ">=", 1), CHURN_RISK),
    (at("usage_falling"), CHURN_RISK),
    (at("usage_sliding"), CHURN_RISK),
    (at("executive_silence"), CHURN_RISK),
    (at("near_quota"), EXPANSION),
    (at("seats_full"), EXPANSION),
    (at("users_rising"), EXPANSION),
    (at("usage_rising"), EXPANSION),
    (at("usage_climbing"), EXPANSION),
    (Condition("feature_request_tickets_90d", ">=", 1), EXPANSION),
    (Condition("feature_breadth_pct", "<", 50), CHURN_RISK),
    (at("seats_idle"), CHURN_RISK),
    (at("users_falling"), CHURN_RISK),
    (at("breadth_wide"), EXPANSION),
    (Condition("whitespace_usd", ">", 0), EXPANSION),
)


def rule_reasons_rows(values: Mapping[str, np.ndarray], specs: Mapping[str, Any] | None = None, top_k: int = 3,
                      peers: Peers | None = None, symbol: str = CURRENCY_SYMBOL,
                      alert_pct: float = DEFAULT_ALERT_PCT) -> list[list[ReasonItem]]:
    """Reasons from fixed rules on the feature values, used when no model contributions exist.

    The same wording, sides and one-reason-per-concept-per-side as :func:`explain_rows`, and
    the same peer rule (a ranking that sets nothing apart is no reason); a rule earlier in
    :data:`RULES` ranks first.
    """
    specs = _with_registry(specs)
    levels = thresholds(quota_alert_pct=alert_pct)
    n = len(next(iter(values.values()))) if values else 0
    if peers is None:
        peers = Peers.of(pd.DataFrame(dict(values)), [f for f in values if f in TEMPLATE_BY_FEATURE])
    segments = values.get("segment", np.full(n, None, dtype=object))
    fired = []
    for condition, effect in RULES:
        feature = condition.field
        if feature not in values:
            fired.append(None)
            continue
        hit = _rule_fires(values, condition, levels)
        if TEMPLATE_BY_FEATURE[feature].comparison == "peers" and hit.any():
            hit &= _stands_out(peers, feature, segments, values[feature], _reads_high(feature, effect, specs.get(feature)))
        fired.append(hit)
    chosen: list[tuple[int, str, int, str, str, str, float]] = []
    effects = [EXPANSION, CHURN_RISK]
    arr = values.get("arr")
    for r in range(n):
        seen: dict[str, set[str]] = {LIFTS: set(), HOLDS_BACK: set()}
        for rule, (condition, effect) in enumerate(RULES):
            feature = condition.field
            side = LIFTS if effect == EXPANSION else HOLDS_BACK
            concept = concept_of(feature, specs.get(feature)) or feature
            if fired[rule] is None or not fired[rule][r] or concept in seen[LIFTS] | seen[HOLDS_BACK]:
                continue
            if len(seen[side]) == top_k:
                continue
            if "{share_of_arr}" in TEMPLATE_BY_FEATURE[feature].text and not (arr is not None and arr[r] > 0):
                continue  # whitespace is worded against ARR: unknown ARR, no reason
            seen[side].add(concept)
            chosen.append((r, feature, effects.index(effect), effect, side, concept, math.nan))
    items = _worded(chosen, n, values, effects, specs, peers, symbol, alert_pct)
    return [[replace(i, contribution=None) for i in row] for row in items]


def _rule_fires(values: Mapping[str, np.ndarray], condition: Condition, levels: Mapping[str, float]) -> np.ndarray:
    op, threshold = OPS[condition.op], condition.threshold_in(levels)
    v = np.asarray(values[condition.field])
    if v.dtype.kind not in "fiub":
        v = pd.to_numeric(pd.Series(v, dtype=object), errors="coerce").to_numpy(dtype=float)
    v = v.astype(float)
    with np.errstate(invalid="ignore"):
        return ~np.isnan(v) & np.asarray(op(v, threshold), dtype=bool)


def rule_reasons(row: Mapping[str, Any], specs: Mapping[str, Any] | None = None, top_k: int = 3,
                 peers: Peers | None = None) -> list[ReasonItem]:
    """:func:`rule_reasons_rows` for one account's feature dict."""
    values = {k: np.array([None if _missing(v) else v], dtype=object if isinstance(v, str) else float)
              for k, v in row.items()}
    return rule_reasons_rows(values, specs, top_k, peers)[0]


def concept_contributions(
    contributions: Mapping[str, tuple[Sequence[str], np.ndarray]],
    explained: Mapping[str, np.ndarray],
    specs: Mapping[str, Any] | None = None,
) -> list[dict[str, dict[str, float]]]:
    """Per row, each effect's contributions summed per signal concept (signed), for the effects that
    explained the row (``explained``: effect -> row mask). What changed since the last run compares these."""
    specs = _with_registry(specs)
    n = len(next(iter(contributions.values()))[1]) if contributions else 0
    out: list[dict[str, dict[str, float]]] = [{} for _ in range(n)]
    for effect, (features, matrix) in contributions.items():
        concepts = [concept_of(f, specs.get(f)) for f in features]
        names = list(dict.fromkeys(c for c in concepts if c))
        if not names:
            continue
        membership = np.zeros((len(features), len(names)))
        for j, c in enumerate(concepts):
            if c:
                membership[j, names.index(c)] = 1.0
        sums = np.round(np.asarray(matrix, dtype=float) @ membership, 4)
        for r in np.flatnonzero(np.asarray(explained.get(effect, np.zeros(n, dtype=bool)), dtype=bool)):
            out[r][effect] = {c: float(v) for c, v in zip(names, sums[r], strict=True) if v != 0.0}
    return out
