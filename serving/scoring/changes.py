"""What changed since the last run: readiness and churn-risk moves, and the concepts that moved them.

Pure functions of two scorer outputs (this run's and the previous run's, as the CRM
history keeps them). The concepts that moved most come from the difference of the
models' contributions summed per concept (:func:`serving.scoring.reasons.concept_contributions`),
compared only for the effects both runs explained.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping
from typing import Any

import numpy as np
import pandas as pd

from features.reason_catalog import CONCEPT_BY_NAME

CHANGE_COLUMNS = ("readiness_change", "churn_risk_change", "change_reason")
# Contribution moves below this (log-odds) are noise between two runs, not a reason.
MIN_CONCEPT_MOVE = 0.02
TOP_CONCEPTS = 2
_WORDS = {("expansion", True): "readiness up", ("expansion", False): "readiness down",
          ("churn_risk", True): "risk up", ("churn_risk", False): "risk down"}


def parse_contributions(value: Any) -> dict[str, dict[str, float]]:
    """Concept contributions from a scorer field or a CRM cell (a JSON string); {} when absent."""
    if value is None or (isinstance(value, float) and math.isnan(value)) or value is pd.NA:
        return {}
    if isinstance(value, str):
        return json.loads(value) if value else {}
    return dict(value)


def moved_concepts(current: Mapping[str, Mapping[str, float]], previous: Mapping[str, Mapping[str, float]],
                   top: int = TOP_CONCEPTS) -> list[tuple[str, str, float]]:
    """(concept, effect, change of its contribution), largest moves first, over effects both runs explained."""
    moves: dict[str, tuple[str, float]] = {}
    for effect in set(current) & set(previous):
        now, before = current[effect], previous[effect]
        for concept in set(now) | set(before):
            delta = float(now.get(concept, 0.0)) - float(before.get(concept, 0.0))
            if abs(delta) >= MIN_CONCEPT_MOVE and abs(delta) > abs(moves.get(concept, ("", 0.0))[1]):
                moves[concept] = (effect, delta)
    ranked = sorted(moves.items(), key=lambda kv: (-abs(kv[1][1]), kv[0]))
    return [(concept, effect, delta) for concept, (effect, delta) in ranked[:top]]


def change_reason(readiness_change: float, churn_risk_change: float,
                  moved: list[tuple[str, str, float]]) -> str | None:
    """'Readiness +12 points, churn risk -3 points since the last run; moved most: usage trend (readiness up), ...'."""
    said = [f"{what} {_points(change)}" for what, change in (("Readiness", readiness_change),
                                                               ("churn risk", churn_risk_change))
            if not math.isnan(change)]
    if not said:
        return None
    text = ", ".join(said) + " since the last run"
    if moved:
        concepts = ", ".join(f"{CONCEPT_BY_NAME[c].label} ({_WORDS[(e, d > 0)]})" for c, e, d in moved)
        text += f"; moved most: {concepts}"
    return text[0].upper() + text[1:]


def _points(change: float) -> str:
    return "unchanged" if round(change) == 0 else f"{change:+.0f} points"


def score_changes(current: pd.DataFrame, previous: pd.DataFrame | None) -> pd.DataFrame:
    """Per account of ``current``: readiness change (points), churn-risk change (percentage points), reason.

    Both frames have ``account_id``, ``readiness_score``, ``churn_probability`` and
    optionally ``concept_contributions``; an account absent from ``previous`` (new since
    the last run) gets nulls. Rows come back in ``current``'s order.
    """
    ids = current["account_id"].astype(str).to_numpy()
    out = pd.DataFrame({"account_id": ids})
    if previous is None or not len(previous):
        out["readiness_change"], out["churn_risk_change"] = np.nan, np.nan
        out["change_reason"] = pd.Series([None] * len(out), dtype=object)
        return out
    prev = previous.assign(account_id=previous["account_id"].astype(str)).drop_duplicates("account_id", keep="last")
    prev = prev.set_index("account_id").reindex(ids)
    readiness = _num(current, "readiness_score") - _num(prev, "readiness_score")
    churn = 100.0 * (_num(current, "churn_probability") - _num(prev, "churn_probability"))
    now = current["concept_contributions"].tolist() if "concept_contributions" in current else [None] * len(ids)
    before = prev["concept_contributions"].tolist() if "concept_contributions" in prev else [None] * len(ids)
    reasons = [change_reason(r, c, moved_concepts(parse_contributions(a), parse_contributions(b)))
               for r, c, a, b in zip(readiness, churn, now, before, strict=True)]
    out["readiness_change"], out["churn_risk_change"] = readiness, churn
    out["change_reason"] = pd.Series(reasons, dtype=object)
    return out


def _num(frame: pd.DataFrame, column: str) -> np.ndarray:
    if column not in frame.columns:
        return np.full(len(frame), np.nan)
    return pd.to_numeric(frame[column], errors="coerce").to_numpy(dtype=float, na_value=np.nan)
