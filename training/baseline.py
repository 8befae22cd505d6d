"""The rule-based baseline: the readiness and health scores CS teams build by hand.

Readiness (expansion) is a weighted sum of seven parts, each mapped to 0-100 by
piecewise-linear breakpoints (``np.interp``: flat outside the first and last point, and
monotone, so more of a good signal never lowers the score). Health (churn) starts at 100
points and loses points for each warning sign. A missing input (an optional table absent,
no survey yet) gives the part a documented neutral value instead of failing.

Both are plain functions of the feature frame; :class:`BaselineClassifier` wraps them in
the scikit-learn estimator shape so they go through the same evaluation as the models.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import numpy as np
import pandas as pd

READINESS_BANDS = ("outreach", "nurture", "adoption")
HEALTH_COLOURS = ("green", "yellow", "red")


@dataclass(frozen=True)
class Part:
    """One readiness part: feature, weight, breakpoints (feature value -> points 0-100), neutral points."""

    name: str
    feature: str
    weight: float
    xs: tuple[float, ...]
    points: tuple[float, ...]
    neutral: float = 50.0


# Breakpoints follow the CS rules of thumb in the domain notes; they are the spreadsheet a
# CS team starts from, not fitted to any data.
READINESS_PARTS: tuple[Part, ...] = (
    # usage trend, % change of events over 30 days: flat is 40, +25 % is strong, +50 % is top.
    Part("usage_trend", "events_trend_30d_pct", 0.25, (-30.0, 0.0, 10.0, 25.0, 50.0), (0.0, 40.0, 60.0, 80.0, 100.0)),
    # adoption, % of the plan's features used: 60 % is "high" (80 points); under 30 % rarely upgrades.
    Part("feature_adoption", "feature_breadth_pct", 0.20, (0.0, 30.0, 60.0, 80.0), (0.0, 30.0, 80.0, 100.0)),
    # executive engagement: executive meetings in the last 90 days.
    Part("executive_engagement", "exec_meetings_90d", 0.15, (0.0, 1.0, 2.0, 3.0), (0.0, 60.0, 80.0, 100.0)),
    # sentiment: latest NPS answer (0-10; detractors 0-6, passives 7-8, promoters 9-10), else CSAT on that scale.
    Part("sentiment", "sentiment_0_10", 0.15, (0.0, 6.0, 7.0, 9.0, 10.0), (0.0, 30.0, 60.0, 90.0, 100.0)),
    # team growth: % change of active users over 30 days.
    Part("team_growth", "active_users_trend_30d_pct", 0.10, (-20.0, 0.0, 20.0, 40.0), (0.0, 40.0, 80.0, 100.0)),
    # budget-cycle timing: months until the nearer of renewal and fiscal-year start; 0-3 is the window.
    Part("budget_timing", "months_to_budget_event", 0.10, (0.0, 3.0, 6.0, 12.0), (100.0, 100.0, 50.0, 20.0)),
    # whitespace, as a multiple of current ARR: 1x ARR of headroom or more is full points.
    Part("whitespace", "whitespace_to_arr", 0.05, (0.0, 0.25, 1.0), (0.0, 50.0, 100.0)),
)


@dataclass(frozen=True)
class Penalty:
    """One health warning sign: feature, breakpoints (feature value -> points lost), points lost when missing."""

    name: str
    feature: str
    xs: tuple[float, ...]
    lost: tuple[float, ...]
    neutral: float = 0.0


HEALTH_PENALTIES: tuple[Penalty, ...] = (
    # usage decline: % change of events over 30 days; a halving costs 30 points.
    Penalty("usage_decline", "events_trend_30d_pct", (-50.0, -20.0, 0.0), (30.0, 10.0, 0.0)),
    # support-ticket spike: % change of tickets over 30 days.
    Penalty("ticket_spike", "tickets_trend_30d_pct", (0.0, 50.0, 100.0, 200.0), (0.0, 5.0, 10.0, 15.0)),
    # payment failures in 90 days: the first failure is the strongest signal.
    Penalty("payment_failures", "payment_failures_90d", (0.0, 1.0, 2.0, 3.0), (0.0, 15.0, 25.0, 30.0)),
    # the latest NPS answer is a detractor (0/1).
    Penalty("detractor_nps", "nps_detractor", (0.0, 1.0), (0.0, 15.0)),
    # lost executive contact: days since the last executive touch.
    Penalty("lost_exec_contact", "days_since_exec_touch", (90.0, 180.0, 365.0), (0.0, 5.0, 10.0)),
)

OUTREACH_ABOVE, ADOPTION_BELOW = 70.0, 40.0
GREEN_FROM, RED_BELOW = 70.0, 40.0


def _column(frame: pd.DataFrame, name: str) -> np.ndarray:
    """A numeric column as float array; NaN everywhere when the column is absent."""
    if name in frame.columns:
        return pd.to_numeric(frame[name], errors="coerce").to_numpy(dtype=float, na_value=np.nan)
    return np.full(len(frame), np.nan)


def derived_inputs(frame: pd.DataFrame) -> dict[str, np.ndarray]:
    """Inputs the baseline derives from several features (budget timing, whitespace relative to ARR, sentiment)."""
    renewal = _column(frame, "months_to_renewal")
    fiscal = _column(frame, "months_to_fiscal_year_start")
    with np.errstate(invalid="ignore", divide="ignore"):
        budget = np.fmin(renewal, fiscal)  # fmin ignores a NaN on one side
        arr = _column(frame, "arr")
        ratio = np.where(arr > 0, _column(frame, "whitespace_usd") / arr, np.nan)
    # CSAT (1-5) stands in on the NPS scale when an account has no NPS answer.
    csat_as_nps = (_column(frame, "csat_latest") - 1.0) / 4.0 * 10.0
    sentiment = np.where(np.isnan(nps := _column(frame, "nps_latest")), csat_as_nps, nps)
    return {"months_to_budget_event": budget, "whitespace_to_arr": ratio, "sentiment_0_10": sentiment}


def _inputs(frame: pd.DataFrame) -> dict[str, np.ndarray]:
    derived = derived_inputs(frame)
    names = {p.feature for p in READINESS_PARTS} | {p.feature for p in HEALTH_PENALTIES}
    return {n: derived[n] if n in derived else _column(frame, n) for n in names}


def _piecewise(frame: pd.DataFrame, rules: tuple, values_of: str) -> pd.DataFrame:
    """Each rule's input mapped through its breakpoints (``xs`` -> ``values_of``), its neutral value when missing."""
    inputs = _inputs(frame)
    out = {}
    for rule in rules:
        values = inputs[rule.feature]
        out[rule.name] = np.where(np.isnan(values), rule.neutral, np.interp(values, rule.xs, getattr(rule, values_of)))
    return pd.DataFrame(out, index=frame.index)


def readiness_parts(frame: pd.DataFrame) -> pd.DataFrame:
    """Each readiness part on its 0-100 scale (before weighting), one column per part."""
    return _piecewise(frame, READINESS_PARTS, "points")


def readiness_band(score: np.ndarray | pd.Series) -> np.ndarray:
    """Band of a 0-100 readiness score: ``outreach`` above 70, ``nurture`` 40-70, ``adoption`` below 40."""
    score = np.asarray(score, dtype=float)
    return np.select([score > OUTREACH_ABOVE, score >= ADOPTION_BELOW], ["outreach", "nurture"], "adoption")


def readiness(frame: pd.DataFrame) -> pd.DataFrame:
    """Rule-based expansion readiness: ``readiness_score`` (0-100) and ``readiness_band``."""
    parts = readiness_parts(frame)
    weights = np.array([p.weight for p in READINESS_PARTS])
    score = parts.to_numpy() @ weights
    return pd.DataFrame({"readiness_score": score, "readiness_band": readiness_band(score)}, index=frame.index)


def health_penalties(frame: pd.DataFrame) -> pd.DataFrame:
    """Points each warning sign costs, one column per sign."""
    return _piecewise(frame, HEALTH_PENALTIES, "lost")


def health_colour(points: np.ndarray | pd.Series) -> np.ndarray:
    """Colour of health points: ``green`` from 70, ``yellow`` 40-70, ``red`` below 40."""
    points = np.asarray(points, dtype=float)
    return np.select([points >= GREEN_FROM, points >= RED_BELOW], ["green", "yellow"], "red")


def health(frame: pd.DataFrame) -> pd.DataFrame:
    """Rule-based churn health: ``health_points`` (0-100, higher is healthier) and ``health`` colour."""
    points = np.clip(100.0 - health_penalties(frame).sum(axis=1).to_numpy(), 0.0, 100.0)
    return pd.DataFrame({"health_points": points, "health": health_colour(points)}, index=frame.index)


class BaselineClassifier:
    """The baseline in estimator shape: ``fit`` learns nothing and returns self; ``predict_proba`` is rule-based.

    For ``expansion`` the positive-class score is readiness / 100; for ``churn`` it is
    (100 - health points) / 100. These are rankings, not calibrated probabilities.
    """

    def __init__(self, target: Literal["expansion", "churn"] = "expansion") -> None:
        self.target = target

    def fit(self, frame: pd.DataFrame, y: object = None) -> BaselineClassifier:
        """Check the target and return self (the rules have nothing to learn)."""
        if self.target not in ("expansion", "churn"):
            raise ValueError(f"BaselineClassifier.target must be 'expansion' or 'churn', got {self.target!r}")
        self.classes_ = np.array([0, 1])
        return self

    def score(self, frame: pd.DataFrame) -> np.ndarray:
        """Probability-like score of the positive class in [0, 1]."""
        if self.target == "expansion":
            return readiness(frame)["readiness_score"].to_numpy() / 100.0
        return (100.0 - health(frame)["health_points"].to_numpy()) / 100.0

    def predict_proba(self, frame: pd.DataFrame) -> np.ndarray:
        """Two columns, as scikit-learn: P(negative), P(positive)."""
        positive = self.score(frame)
        return np.column_stack([1.0 - positive, positive])
