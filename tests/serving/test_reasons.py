"""Reasons on hand-built feature rows and contributions."""

from __future__ import annotations

import math

import numpy as np
from reasons_oracle import explain

from serving.reasons import (
    CHURN_RISK,
    EXPANSION,
    explain_rows,
    reason_text,
    rule_reasons,
    supports,
)


def test_templates_read_like_a_csm_would_say_them() -> None:
    assert reason_text("quota_utilization_30d_pct", 86.4) == "Usage at 86 % of plan limit (30 days)"
    assert reason_text("active_users_trend_30d_pct", 40.0) == "Active users up 40 % in 30 days"
    assert reason_text("events_trend_30d_pct", -25.0) == "Usage down 25 % in 30 days"
    assert reason_text("urgent_tickets_30d", 2.0) == "2 urgent tickets in 30 days"
    assert reason_text("urgent_tickets_30d", 1.0) == "1 urgent ticket in 30 days"
    assert reason_text("exec_meetings_90d", 0.0) == "No executive meetings in 90 days"


def test_unknown_values_give_no_reason_and_unknown_features_use_the_registry_text() -> None:
    class Spec:
        description = "Mean widgets per seat."
        unit = "widgets"

    assert reason_text("quota_utilization_30d_pct", float("nan")) is None
    assert reason_text("quota_utilization_30d_pct", None) is None
    assert reason_text("widgets_per_seat", 3.0, Spec()) == "Mean widgets per seat: 3"
    assert reason_text("segment", "enterprise") == "Segment: enterprise"


def test_explain_keeps_positive_drivers_strongest_first_and_skips_unknowns() -> None:
    row = {"quota_utilization_30d_pct": 86.0, "urgent_tickets_30d": 2.0, "nps_latest": math.nan,
           "seat_utilization_pct": 95.0, "feature_breadth_pct": 70.0}
    contributions = {
        EXPANSION: {"quota_utilization_30d_pct": 0.9, "seat_utilization_pct": 0.3, "feature_breadth_pct": -0.4,
                    "nps_latest": 2.0, "urgent_tickets_30d": -0.1},
        CHURN_RISK: {"urgent_tickets_30d": 0.5, "quota_utilization_30d_pct": 0.05, "feature_breadth_pct": -0.2},
    }
    reasons = explain(row, contributions, top_k=5)
    assert [r.feature for r in reasons] == ["quota_utilization_30d_pct", "urgent_tickets_30d", "seat_utilization_pct"]
    assert [r.effect for r in reasons] == [EXPANSION, CHURN_RISK, EXPANSION]
    assert reasons[1].text == "2 urgent tickets in 30 days"
    assert len(explain(row, contributions, top_k=2)) == 2


def test_rule_reasons_fire_on_thresholds_only() -> None:
    calm = {"quota_utilization_30d_pct": 50.0, "payment_failures_90d": 0.0, "urgent_tickets_30d": 0.0}
    assert rule_reasons(calm) == []
    hot = {"quota_utilization_30d_pct": 85.0, "payment_failures_90d": 2.0}
    reasons = rule_reasons(hot)
    assert [r.feature for r in reasons] == ["payment_failures_90d", "quota_utilization_30d_pct"]
    assert reasons[0].effect == CHURN_RISK and reasons[0].contribution is None


def _registry() -> dict:
    from serving.scoring import feature_specs

    return feature_specs()


def test_a_decline_is_never_a_readiness_reason_and_a_negligible_move_is_no_driver() -> None:
    specs = _registry()
    spec = specs["active_users_trend_30d_pct"]
    moves = np.array([-30.0, -1.0, 1.0, 4.0, 30.0, np.nan])
    assert supports("active_users_trend_30d_pct", moves, EXPANSION, spec).tolist() == [False, False, False, False, True, False]
    assert supports("active_users_trend_30d_pct", moves, CHURN_RISK, spec).tolist() == [True, False, False, False, False, False]
    # lower is good for tickets: a falling ticket count reads as readiness, a rising one as risk
    tickets = np.array([-50.0, 50.0])
    assert supports("tickets_trend_30d_pct", tickets, EXPANSION, specs["tickets_trend_30d_pct"]).tolist() == [True, False]
    assert supports("tickets_trend_30d_pct", tickets, CHURN_RISK, specs["tickets_trend_30d_pct"]).tolist() == [False, True]


def test_levels_must_sit_on_the_side_of_the_book_that_drives_the_effect() -> None:
    specs = _registry()
    seats = np.array([20.0, 60.0, 90.0])
    assert supports("seat_utilization_pct", seats, EXPANSION, specs["seat_utilization_pct"], typical=60.0).tolist() == [False, True, True]
    assert supports("seat_utilization_pct", seats, CHURN_RISK, specs["seat_utilization_pct"], typical=60.0).tolist() == [True, True, False]
    meetings = np.array([0.0, 2.0])  # "No executive meetings" can explain risk, never readiness
    assert supports("exec_meetings_90d", meetings, EXPANSION, specs["exec_meetings_90d"]).tolist() == [False, True]
    assert supports("exec_meetings_90d", meetings, CHURN_RISK, specs["exec_meetings_90d"], typical=1.0).tolist() == [True, False]
    detractor = np.array([0.0, 1.0])
    assert supports("nps_detractor", detractor, EXPANSION, specs["nps_detractor"], typical=0.0).tolist() == [True, False]
    assert supports("nps_detractor", detractor, CHURN_RISK, specs["nps_detractor"], typical=0.0).tolist() == [False, True]
    assert supports("months_to_renewal", np.array([1.0, 40.0]), CHURN_RISK, specs["months_to_renewal"]).all()
    assert supports("segment", np.array(["smb", None], dtype=object), EXPANSION, specs["segment"]).tolist() == [True, False]


def test_explain_drops_contradicting_reasons_and_keeps_the_feature_under_the_effect_it_reads_as() -> None:
    specs = _registry()
    row = {"active_users_trend_30d_pct": -1.0, "events_trend_30d_pct": -35.0, "quota_utilization_30d_pct": 90.0,
           "exec_meetings_90d": 0.0}
    contributions = {
        EXPANSION: {"active_users_trend_30d_pct": 0.8, "events_trend_30d_pct": 0.6, "quota_utilization_30d_pct": 0.5,
                    "exec_meetings_90d": 0.4},
        CHURN_RISK: {"events_trend_30d_pct": 0.2, "exec_meetings_90d": 0.1},
    }
    reasons = explain(row, contributions, specs, typical={"quota_utilization_30d_pct": 40.0, "exec_meetings_90d": 1.0})
    assert [(r.feature, r.effect) for r in reasons] == [
        ("quota_utilization_30d_pct", EXPANSION), ("events_trend_30d_pct", CHURN_RISK), ("exec_meetings_90d", CHURN_RISK)]
    assert reasons[1].text == "Usage down 35 % in 30 days" and reasons[2].text == "No executive meetings in 90 days"


def test_explain_rows_gives_the_same_reasons_as_explain_row_by_row() -> None:
    specs = _registry()
    rng = np.random.default_rng(5)
    n = 300
    exp_features = ["events_trend_30d_pct", "seat_utilization_pct", "exec_meetings_90d", "nps_detractor", "segment"]
    churn_features = ["exec_meetings_90d", "tickets_30d", "events_trend_30d_pct", "months_to_renewal"]
    values = {
        "events_trend_30d_pct": rng.normal(0, 30, n), "seat_utilization_pct": rng.uniform(0, 100, n),
        "exec_meetings_90d": rng.poisson(1, n).astype(float), "nps_detractor": rng.integers(0, 2, n).astype(float),
        "segment": rng.choice(np.array(["smb", "enterprise", None], dtype=object), n),
        "tickets_30d": rng.poisson(2, n).astype(float), "months_to_renewal": rng.uniform(0, 12, n),
    }
    values["seat_utilization_pct"][::7] = np.nan
    exp_c, churn_c = rng.normal(0, 1, (n, len(exp_features))), rng.normal(0, 1, (n, len(churn_features)))
    churn_c[::5] = 0.0  # rows the churn model does not explain
    typical = {"seat_utilization_pct": 50.0, "exec_meetings_90d": 1.0, "tickets_30d": 2.0}
    fast = explain_rows(values, {EXPANSION: (exp_features, exp_c), CHURN_RISK: (churn_features, churn_c)}, specs, 3, typical)
    for r in range(n):
        row = {f: v[r] for f, v in values.items()}
        contributions = {EXPANSION: dict(zip(exp_features, exp_c[r])), CHURN_RISK: dict(zip(churn_features, churn_c[r]))}
        assert fast[r] == explain(row, contributions, specs, 3, typical), r
    assert {len(items) for items in fast} >= {1, 3}
