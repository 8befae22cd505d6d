"""What changed since the last run, on hand-built scores and contributions."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd

from serving.scoring.changes import change_reason, moved_concepts, score_changes
from serving.scoring.reasons import CHURN_RISK, EXPANSION, concept_contributions
from serving.scoring.scorer import feature_specs


def test_concept_contributions_add_a_concepts_features_and_leave_context_out() -> None:
    features = ["events_7d", "events_30d", "seat_utilization_pct", "segment"]
    matrix = np.array([[0.1, 0.2, -0.3, 5.0], [0.0, 0.0, 0.4, 1.0]])
    out = concept_contributions({EXPANSION: (features, matrix)}, {EXPANSION: np.array([True, False])}, feature_specs())
    assert out[0] == {EXPANSION: {"usage_volume": 0.3, "seats": -0.3}}
    assert out[1] == {}  # not explained by that model in this run: nothing to compare later


def test_the_concepts_that_moved_most_come_from_the_difference_of_contributions() -> None:
    before = {EXPANSION: {"usage_trend": 0.1, "seats": 0.2}, CHURN_RISK: {"support": 0.05}}
    now = {EXPANSION: {"usage_trend": 0.6, "seats": 0.21}, CHURN_RISK: {"support": 0.35, "billing": -0.2}}
    assert moved_concepts(now, before) == [("usage_trend", EXPANSION, 0.5), ("support", CHURN_RISK, 0.3)]
    assert moved_concepts(now, {EXPANSION: before[EXPANSION]}, top=5) == [("usage_trend", EXPANSION, 0.5)]  # seats: noise
    assert change_reason(0.3, -0.4, []) == "Readiness unchanged, churn risk unchanged since the last run"
    text = change_reason(12.4, -3.0, moved_concepts(now, before))
    assert text == "Readiness +12 points, churn risk -3 points since the last run; moved most: usage trend (readiness up), support (risk up)"


def test_score_changes_join_the_previous_run_by_account_and_leave_new_accounts_null() -> None:
    previous = pd.DataFrame({"account_id": ["a", "b"], "readiness_score": [50.0, 80.0], "churn_probability": [0.10, 0.05],
                             "concept_contributions": [json.dumps({EXPANSION: {"seats": 0.1}}), None]})
    current = pd.DataFrame({"account_id": ["b", "a", "new"], "readiness_score": [70.0, 62.0, 40.0],
                            "churn_probability": [0.08, 0.10, 0.2],
                            "concept_contributions": [{EXPANSION: {"seats": 0.4}}, {EXPANSION: {"seats": 0.5}}, {}]})
    out = score_changes(current, previous)
    assert out["account_id"].tolist() == ["b", "a", "new"]
    assert np.allclose(out["readiness_change"].to_numpy()[:2], [-10.0, 12.0]) and np.isnan(out.at[2, "readiness_change"])
    assert np.allclose(out["churn_risk_change"].to_numpy()[:2], [3.0, 0.0])
    assert out.at[0, "change_reason"] == "Readiness -10 points, churn risk +3 points since the last run"
    assert out.at[1, "change_reason"].endswith("moved most: seat use (readiness up)")
    assert out.at[2, "change_reason"] is None
    first = score_changes(current, None)
    assert first["readiness_change"].isna().all() and first["change_reason"].isna().all()
