"""The leadership page's lines and their green / yellow / red status (pure; thresholds declared once).

Thresholds come from published customer-success benchmarks (``docs/web.md`` lists them,
rendered from :data:`THRESHOLDS`): NRR bands, GRR above 90 %, a monthly expansion rate of
2-4 % of the base, pipeline coverage of 3-4x the quarter's target (alert under 2.5x), and
expansion ARR on pace with the target.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from serving.api.snapshot import ScoredSnapshot


@dataclass(frozen=True)
class Threshold:
    """Green at or above ``green``, yellow at or above ``yellow``, else red; ``green_max`` caps green
    (an expansion rate above 5 % a month usually means the first sale under-sold)."""

    line: str
    unit: str
    green: float
    yellow: float
    source: str
    green_max: float | None = None


THRESHOLDS: dict[str, Threshold] = {
    "nrr": Threshold("NRR, trailing 12 months", "%", 100.0, 90.0, "NRR bands: >= 100 % strong, 90-100 % needs improvement, < 90 % critical"),
    "grr": Threshold("GRR, trailing 12 months", "%", 90.0, 80.0, "healthy companies keep GRR above 90 %"),
    "expansion_rate": Threshold("expansion rate, last month", "% of starting MRR", 2.0, 1.0,
                                "healthy: 2-4 % of the base a month; above 5 % often means initial under-selling",
                                green_max=5.0),
    "target_pace": Threshold("expansion ARR added, quarter to date", "% of the target's pace", 100.0, 80.0,
                             "on pace: the share of the quarterly target reached at least matches the share of the quarter gone"),
    "coverage": Threshold("pipeline coverage", "x the quarter's remaining target", 3.0, 2.5,
                          "3-4x the quarterly target; alert under 2.5x"),
}


def status(key: str, value: float | None) -> str:
    """``green``, ``yellow``, ``red``, or ``grey`` when the value is unknown."""
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "grey"
    t = THRESHOLDS[key]
    if value >= t.green:
        return "yellow" if t.green_max is not None and value > t.green_max else "green"
    return "yellow" if value >= t.yellow else "red"


def target_pace(added_arr: float, target: float | None, months_done: int) -> float | None:
    """Expansion ARR added as a percent of the target pro-rated to the months of the quarter gone."""
    if not target or months_done <= 0:
        return None
    return added_arr / (target * months_done / 3) * 100


def coverage(open_pipeline_arr: float, target: float | None, added_arr: float) -> float | None:
    """Open expansion pipeline over what remains of the quarter's target (None without a target or when reached)."""
    if not target:
        return None
    remaining = target - added_arr
    return None if remaining <= 0 else open_pipeline_arr / remaining


def largest(snapshot: ScoredSnapshot, n: int = 5) -> dict[str, list[dict[str, Any]]]:
    """The largest risks (ARR x churn probability) and opportunities (expected expansion value), in currency."""
    if not len(snapshot.scores):
        return {"risks": [], "opportunities": []}
    s = snapshot.scores
    arr = snapshot.features["arr"] if "arr" in snapshot.features.columns else pd.Series(np.nan, index=s.index)
    churn = s["churn_probability"].astype(float)
    if churn.isna().all():
        churn = s["baseline_risk"].astype(float) / 100.0  # no churn model: the rule-based risk stands in
    at_risk = (arr.astype(float) * churn).rename("at_risk")
    owner = snapshot.features["csm_owner"] if "csm_owner" in snapshot.features.columns else pd.Series(None, index=s.index)
    frame = pd.DataFrame({"at_risk": at_risk, "arr": arr, "churn": churn, "health": s["health"], "owner": owner,
                          "value": s["expected_expansion_usd"].astype(float), "readiness": s["readiness_score"],
                          "play": s["recommended_play"]})
    risks = frame.dropna(subset=["at_risk"]).nlargest(n, "at_risk")
    opps = frame.dropna(subset=["value"]).nlargest(n, "value")
    if not len(opps):
        opps = frame.nlargest(n, "readiness")
    # plays come with reasons, looked up for the rows shown only
    shown = list(dict.fromkeys([*risks.index, *opps.index]))
    plays = {r["account_id"]: r.get("recommended_play") for r in snapshot.lookup(shown, True)}
    risks, opps = (f.assign(play=[plays.get(i) for i in f.index]) for f in (risks, opps))
    return {"risks": _records(risks), "opportunities": _records(opps)}


def _records(frame: pd.DataFrame) -> list[dict[str, Any]]:
    return [{"account_id": str(i), **{k: (None if v is pd.NA or (isinstance(v, float) and v != v) else v)
                                      for k, v in r.items()}}
            for i, r in zip(frame.index, frame.to_dict("records"), strict=True)]
