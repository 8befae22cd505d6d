"""Readable reasons from model contributions (the play to run next is in :mod:`serving.plays`).

Pure functions of feature values and their contributions: no model, no I/O. A CSM reads a
short list of distinct signals, so reasons are chosen by *concept* (the registry gives every
feature one, :mod:`features.reason_catalog` declares them): the contributions of a concept's
features that push the same way add up, each concept gives at most one reason (worded by
its strongest feature), and the concepts are ranked by their summed contribution. Context
concepts (segment, industry, region, channel, tenure, size, plan) shape scores but are never
reasons. Every reason is worded from its declared template with a comparison: the
account's own past, its peers in the segment (:mod:`serving.peers`), or a limit.

A positive contribution alone does not make a readable driver: the registry says which
direction of each feature is good, and a reason is shown only when the value sits on the
side that pushes towards its effect (:func:`supports`): a decline is never a reason for
readiness, "no executive meetings" never one for expansion, and a change too small to be
a trend is no driver at all.
"""

from __future__ import annotations

import math
import numbers
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from features.reason_catalog import CONCEPT_BY_NAME, CURRENCY_SYMBOL, TEMPLATE_BY_FEATURE
from features.registry import FEATURES
from serving.peers import Peers, peers_label
from serving.wording import reason_fields, render

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

    def as_dict(self) -> dict[str, Any]:
        return {"text": self.text, "feature": self.feature, "effect": self.effect, "contribution": self.contribution,
                "concept": self.concept, "comparison": self.comparison}


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


def admissible(feature: str, values: Any, effect: str, spec: Any | None, typical: float | None,
               arr: np.ndarray | None = None) -> np.ndarray:
    """:func:`supports`, plus what the wording needs: a neutral feature must sit on its notable side
    of the book's median (a renewal is a reason when it is sooner than typical), and a whitespace
    amount needs a known ARR to be compared with."""
    ok = supports(feature, values, effect, spec, typical)
    template = TEMPLATE_BY_FEATURE.get(feature)
    if template is not None and template.side is not None and typical is not None and not math.isnan(typical):
        v = np.asarray(values, dtype=float)
        with np.errstate(invalid="ignore"):
            ok = ok & (v <= typical if template.side == "low" else v >= typical)
    if template is not None and "{share_of_arr}" in template.text:
        a = np.full(len(ok), np.nan) if arr is None else np.asarray(arr, dtype=float)
        ok = ok & (np.nan_to_num(a) > 0)
    return ok


def explain_rows(
    values: Mapping[str, np.ndarray],
    contributions: Mapping[str, tuple[Sequence[str], np.ndarray]],
    specs: Mapping[str, Any] | None = None,
    top_k: int = 5,
    typical: Mapping[str, float] | None = None,
    peers: Peers | None = None,
    symbol: str = CURRENCY_SYMBOL,
) -> list[list[ReasonItem]]:
    """Reasons of many rows: at most one per concept, strongest concept first, ``top_k`` at most.

    ``values`` holds one array per feature column (absent columns are unknown; ``segment`` and
    ``arr`` are read for the comparisons); ``contributions`` maps an effect to (feature names,
    rows x features matrix). A concept's strength for an effect is the sum of its admissible
    (:func:`admissible`) positive contributions; it is shown under its stronger effect, worded
    by its strongest feature there. ``peers`` ranks values within the segment (default: the
    rows themselves).
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
    adm = np.zeros((len(effects), n, len(names)))
    position = {f: j for j, f in enumerate(names)}
    for e, (effect, (features, matrix)) in enumerate(contributions.items()):
        for col, feature in enumerate(features):
            j = position.get(feature)
            if j is None:
                continue
            c = np.asarray(matrix[:, col], dtype=float)
            ok = (c > 0) & admissible(feature, values[feature], effect, specs.get(feature), typical.get(feature), arr)
            if TEMPLATE_BY_FEATURE[feature].comparison == "peers" and ok.any():
                ok &= _stands_out(peers, feature, segments, values[feature], _reads_high(feature, effect, specs.get(feature)))
            adm[e, :, j] = np.where(ok, c, 0.0)
    totals = np.stack([adm[:, :, cols].sum(axis=2) for cols in columns], axis=2)  # effects x rows x concepts
    reps = np.stack([cols[adm[:, :, cols].argmax(axis=2)] for cols in columns], axis=2)
    effect_of = totals.argmax(axis=0)  # on a tie the first effect keeps the concept
    strength = np.take_along_axis(totals, effect_of[None], 0)[0]
    order = np.argsort(-strength, axis=1, kind="stable")[:, :top_k]
    chosen: list[tuple[int, str, int, str, float]] = []
    for r in range(n):
        for k in order[r]:
            if strength[r, k] <= 0:
                break
            e = effect_of[r, k]
            chosen.append((r, names[reps[e, r, k]], e, concepts[k], float(strength[r, k])))
    return _worded(chosen, n, values, effects, specs, peers, symbol)


# A peer comparison is a reason only when it singles the account out: in the top (or bottom)
# half of its segment at most. "Bottom 94 % of SMB accounts by late payments" says nothing.
MAX_PEER_SHARE_PCT = 50.0


def _stands_out(peers: Peers, feature: str, segments: np.ndarray, values: np.ndarray, high: bool) -> np.ndarray:
    """Rows whose value lies within the top (``high``) or bottom :data:`MAX_PEER_SHARE_PCT` of their peers."""
    share = peers.share_beyond(feature, peers.groups_of(feature, segments), np.asarray(values, dtype=float),
                               np.full(len(values), high))
    with np.errstate(invalid="ignore"):
        return share <= MAX_PEER_SHARE_PCT


def _worded(chosen: list[tuple[int, str, int, str, float]], n: int, values: Mapping[str, np.ndarray],
            effects: Sequence[str], specs: Mapping[str, Any], peers: Peers | None,
            symbol: str = CURRENCY_SYMBOL) -> list[list[ReasonItem]]:
    """Fill each chosen (row, feature, effect, concept, strength) into its template; peers ranked per feature."""
    if peers is None:  # rank within the rows themselves
        peers = Peers.of(pd.DataFrame(dict(values)), [f for f in values if f in TEMPLATE_BY_FEATURE])
    segments = values.get("segment")
    rows = np.array([c[0] for c in chosen], dtype=int)
    features = np.array([c[1] for c in chosen], dtype=object)
    p = np.full(len(chosen), np.nan)
    high = np.array([_reads_high(c[1], effects[c[2]], specs.get(c[1])) for c in chosen], dtype=bool)
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
    for i, (r, feature, e, concept, strength) in enumerate(chosen):
        template, spec = TEMPLATE_BY_FEATURE[feature], specs.get(feature)
        fields = reason_fields(template, float(values[feature][r]), str(getattr(spec, "unit", "") or ""),
                               arr=None if arr is None else float(arr[r]), p=p[i], high=bool(high[i]),
                               peers=peers_label(groups[i]), symbol=symbol)
        text = render(template, fields)
        if text is not None:
            out[r].append(ReasonItem(text, feature, effects[e], round(strength, 4), concept, template.comparison))
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


def rule_reasons_rows(values: Mapping[str, np.ndarray], specs: Mapping[str, Any] | None = None, top_k: int = 5,
                      peers: Peers | None = None, symbol: str = CURRENCY_SYMBOL) -> list[list[ReasonItem]]:
    """Reasons from fixed rules on the feature values, used when no model contributions exist.

    The same wording and one-reason-per-concept as :func:`explain_rows`; a rule earlier in
    :data:`RULES` ranks first.
    """
    specs = _with_registry(specs)
    n = len(next(iter(values.values()))) if values else 0
    chosen: list[tuple[int, str, int, str, float]] = []
    effects = [EXPANSION, CHURN_RISK]
    fired = [_rule_fires(values, f, fires) if f in values else None for f, _, fires in RULES]
    arr = values.get("arr")
    for r in range(n):
        seen: set[str] = set()
        for rule, (feature, effect, _) in enumerate(RULES):
            concept = concept_of(feature, specs.get(feature)) or feature
            if fired[rule] is None or not fired[rule][r] or concept in seen:
                continue
            if "{share_of_arr}" in TEMPLATE_BY_FEATURE[feature].text and not (arr is not None and arr[r] > 0):
                continue  # whitespace is worded against ARR: unknown ARR, no reason
            seen.add(concept)
            chosen.append((r, feature, effects.index(effect), concept, math.nan))
            if len(seen) == top_k:
                break
    items = _worded(chosen, n, values, effects, specs, peers, symbol)
    return [[ReasonItem(i.text, i.feature, i.effect, None, i.concept, i.comparison) for i in row] for row in items]


def _rule_fires(values: Mapping[str, np.ndarray], feature: str, fires: Callable[[float], bool]) -> np.ndarray:
    v = np.asarray(values[feature])
    if v.dtype.kind not in "fiub":
        v = pd.to_numeric(pd.Series(v, dtype=object), errors="coerce").to_numpy(dtype=float)
    v = v.astype(float)
    with np.errstate(invalid="ignore"):
        return ~np.isnan(v) & np.array([bool(fires(x)) if not math.isnan(x) else False for x in v])


def rule_reasons(row: Mapping[str, Any], specs: Mapping[str, Any] | None = None, top_k: int = 5,
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
