"""The rule-based baseline: weights, bands, neutral values for missing inputs, monotonicity."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from training.baseline import (
    HEALTH_PENALTIES,
    READINESS_PARTS,
    BaselineClassifier,
    health,
    health_colour,
    readiness,
    readiness_band,
    readiness_parts,
)


def test_weights_are_the_documented_spreadsheet_weights():
    weights = {p.name: p.weight for p in READINESS_PARTS}
    assert weights == {
        "usage_trend": 0.25, "feature_adoption": 0.20, "executive_engagement": 0.15, "sentiment": 0.15,
        "team_growth": 0.10, "budget_timing": 0.10, "whitespace": 0.05,
    }


def test_score_is_the_weighted_sum_of_parts(small_frame):
    parts = readiness_parts(small_frame)
    expected = sum(parts[p.name] * p.weight for p in READINESS_PARTS)
    np.testing.assert_allclose(readiness(small_frame)["readiness_score"], expected)
    assert parts.min().min() >= 0 and parts.max().max() <= 100


def test_sixty_percent_adoption_is_high():
    parts = readiness_parts(pd.DataFrame({"feature_breadth_pct": [20.0, 60.0]}))
    assert parts["feature_adoption"].iloc[1] >= 80 > parts["feature_adoption"].iloc[0]


def test_bands_at_their_boundaries():
    assert list(readiness_band([70.01, 70.0, 40.0, 39.99])) == ["outreach", "nurture", "nurture", "adoption"]
    assert list(health_colour([70.0, 69.9, 40.0, 39.9])) == ["green", "yellow", "yellow", "red"]


def test_missing_inputs_give_neutral_values_not_errors():
    empty = pd.DataFrame(index=range(3))
    score = readiness(empty)
    neutral = sum(p.neutral * p.weight for p in READINESS_PARTS)
    np.testing.assert_allclose(score["readiness_score"], neutral)
    assert (health(empty)["health_points"] == 100 - sum(p.neutral for p in HEALTH_PENALTIES)).all()


def test_extremes_reach_both_ends_of_the_scale():
    best = pd.DataFrame({
        "events_trend_30d_pct": [80.0], "feature_breadth_pct": [90.0], "exec_meetings_90d": [4.0], "nps_latest": [10.0],
        "active_users_trend_30d_pct": [50.0], "months_to_renewal": [1.0], "whitespace_usd": [2e5], "arr": [1e5],
    })
    worst = pd.DataFrame({
        "events_trend_30d_pct": [-80.0], "feature_breadth_pct": [0.0], "exec_meetings_90d": [0.0], "nps_latest": [0.0],
        "active_users_trend_30d_pct": [-50.0], "months_to_renewal": [12.0], "months_to_fiscal_year_start": [12.0],
        "whitespace_usd": [0.0], "arr": [1e5],
    })
    assert readiness(best)["readiness_band"].iloc[0] == "outreach"
    assert readiness(worst)["readiness_band"].iloc[0] == "adoption"


@pytest.mark.parametrize("feature", ["events_trend_30d_pct", "feature_breadth_pct", "exec_meetings_90d", "nps_latest",
                                     "active_users_trend_30d_pct", "whitespace_usd"])
def test_more_of_a_good_signal_never_lowers_readiness(small_frame, feature):
    frame = small_frame.copy()
    before = readiness(frame)["readiness_score"].to_numpy()
    frame[feature] = frame[feature] + np.abs(frame[feature]) * 0.5 + 5  # missing stays missing (neutral)
    assert (readiness(frame)["readiness_score"].to_numpy() >= before - 1e-9).all()


@pytest.mark.parametrize("feature", ["payment_failures_90d", "tickets_trend_30d_pct", "days_since_exec_touch", "nps_detractor"])
def test_more_of_a_warning_sign_never_improves_health(small_frame, feature):
    frame = small_frame.copy()
    before = health(frame)["health_points"].to_numpy()
    frame[feature] = frame[feature] + 1 if feature != "tickets_trend_30d_pct" else frame[feature] + 40
    after = health(frame)["health_points"].to_numpy()
    assert (after <= before + 1e-9).all()
    if feature == "payment_failures_90d":
        assert (after < before).any()


def test_usage_decline_lowers_health():
    frame = pd.DataFrame({"events_trend_30d_pct": [0.0, -30.0, -60.0]})
    points = health(frame)["health_points"].to_numpy()
    assert points[0] > points[1] > points[2]


def test_estimator_shape_matches_scikit_learn(small_frame):
    est = BaselineClassifier("churn")
    assert est.fit(small_frame) is est
    proba = est.predict_proba(small_frame)
    assert proba.shape == (len(small_frame), 2)
    np.testing.assert_allclose(proba.sum(axis=1), 1.0)
    np.testing.assert_allclose(proba[:, 1], (100 - health(small_frame)["health_points"]) / 100)
    with pytest.raises(ValueError, match="target"):
        BaselineClassifier("upsell").fit(small_frame)  # type: ignore[arg-type]
