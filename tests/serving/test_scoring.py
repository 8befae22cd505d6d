"""The Scorer on a small generated feature frame with real LightGBM models trained by training.models."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from serving.scoring import SCORE_COLUMNS, Scorer, feature_specs

FEATURES = ["events_trend_30d_pct", "quota_utilization_30d_pct", "feature_breadth_pct", "payment_failures_90d",
            "urgent_tickets_30d", "days_since_exec_touch", "nps_latest", "whitespace_usd", "segment"]


def make_frame(accounts: int = 300, months: int = 12, seed: int = 3) -> pd.DataFrame:
    """Month-end snapshots whose labels follow usage trend, quota use, payment failures and tickets."""
    rng = np.random.default_rng(seed)
    n = accounts * months
    frame = pd.DataFrame({
        "account_id": np.tile([f"acc{i:04d}" for i in range(accounts)], months),
        "as_of": np.repeat(pd.date_range("2024-01-31", periods=months, freq="ME"), accounts),
        "csm_owner": np.tile([f"csm{i % 4}" for i in range(accounts)], months),
        "segment": np.tile(rng.choice(["smb", "mid_market", "enterprise"], accounts), months),
        "events_trend_30d_pct": rng.normal(0, 30, n),
        "quota_utilization_30d_pct": rng.uniform(10, 110, n),
        "feature_breadth_pct": rng.uniform(0, 100, n),
        "payment_failures_90d": rng.poisson(0.3, n).astype(float),
        "urgent_tickets_30d": rng.poisson(0.3, n).astype(float),
        "days_since_exec_touch": rng.uniform(0, 400, n),
        "nps_latest": rng.integers(0, 11, n).astype(float),
        "whitespace_usd": rng.uniform(0, 50_000, n),
    })
    logit_exp = -2.0 + 0.04 * frame["events_trend_30d_pct"] + 0.04 * (frame["quota_utilization_30d_pct"] - 60)
    logit_churn = -2.5 - 0.03 * frame["events_trend_30d_pct"] + 1.0 * frame["payment_failures_90d"] \
        + 0.8 * frame["urgent_tickets_30d"]
    frame["expanded"] = (rng.random(n) < 1 / (1 + np.exp(-logit_exp))).astype(float)
    frame["churned"] = (rng.random(n) < 1 / (1 + np.exp(-logit_churn))).astype(float)
    return frame


def train_models(frame: pd.DataFrame) -> tuple[object, object]:
    """Expansion and churn models fitted on the first two thirds of the snapshots, validated on the rest."""
    from training.models import fit_model

    cut = frame["as_of"].sort_values().unique()[len(frame["as_of"].unique()) * 2 // 3]
    train, valid = frame[frame["as_of"] < cut], frame[frame["as_of"] >= cut]
    models = []
    for name, label in (("expansion", "expanded"), ("churn", "churned")):
        model = fit_model(name, train, valid, label, FEATURES, ["segment"], num_boost_round=60,
                          params={"min_data_in_leaf": 40})
        model.version = "7" if name == "expansion" else "9"
        models.append(model)
    return models[0], models[1]


@pytest.fixture(scope="module")
def frame() -> pd.DataFrame:
    return make_frame()


@pytest.fixture(scope="module")
def models(frame: pd.DataFrame) -> tuple[object, object]:
    return train_models(frame)


@pytest.fixture(scope="module")
def latest(frame: pd.DataFrame) -> pd.DataFrame:
    return frame[frame["as_of"] == frame["as_of"].max()].drop(columns=["expanded", "churned"]).reset_index(drop=True)


def test_score_returns_every_field_in_range(models: tuple, latest: pd.DataFrame) -> None:
    scorer = Scorer(*models, feature_specs()).with_reference(latest)
    out = scorer.score(latest.head(40))
    assert list(out.columns) == list(SCORE_COLUMNS)
    assert out["account_id"].tolist() == latest["account_id"].head(40).tolist()
    assert out["expansion_probability"].between(0, 1).all() and out["churn_probability"].between(0, 1).all()
    assert out["readiness_score"].between(0, 100).all()
    assert set(out["readiness_band"]) <= {"outreach", "nurture", "adoption"}
    assert set(out["health"]) <= {"green", "yellow", "red"}
    assert out["reasons"].map(len).between(1, 5).all()
    assert np.allclose(out["expected_expansion_usd"], out["expansion_probability"] * out["whitespace_usd"])
    assert set(out["expansion_model_version"]) == {"7"} and set(out["churn_model_version"]) == {"9"}
    assert out["model_available"].all() and out["recommended_play"].notna().all()
    assert (out["as_of"] == latest["as_of"].max().date().isoformat()).all()


def test_readiness_is_the_percentile_of_expansion_probability_in_the_reference(models: tuple, latest: pd.DataFrame) -> None:
    scorer = Scorer(*models).with_reference(latest)
    full = scorer.score(latest, with_reasons=False)
    order = np.argsort(full["expansion_probability"].to_numpy())
    assert np.all(np.diff(full["readiness_score"].to_numpy()[order]) >= 0)  # monotone in probability
    assert 40 < full["readiness_score"].mean() < 60  # percentiles of the reference average ~50
    single = scorer.score(latest.iloc[[5]], with_reasons=False)
    assert single["readiness_score"].iloc[0] == pytest.approx(full["readiness_score"].iloc[5])


def test_reasons_name_drivers_from_contributions_only_where_asked(models: tuple, latest: pd.DataFrame) -> None:
    scorer = Scorer(*models).with_reference(latest)
    mask = np.zeros(10, dtype=bool)
    mask[[2, 7]] = True
    out = scorer.score(latest.head(10), with_reasons=mask)
    assert out["reasons"].map(len).to_numpy().nonzero()[0].tolist() == [2, 7]
    assert out["recommended_play"].isna().sum() == 8
    details = out.at[2, "reason_details"]
    assert all(d["contribution"] > 0 and d["feature"] in FEATURES for d in details)


def test_a_hot_account_gets_an_upgrade_play_and_a_failing_one_a_risk_play(models: tuple, latest: pd.DataFrame) -> None:
    scorer = Scorer(*models).with_reference(latest)
    base = latest.iloc[[0, 0]].reset_index(drop=True).copy()
    base.loc[0, ["quota_utilization_30d_pct", "events_trend_30d_pct", "payment_failures_90d", "urgent_tickets_30d"]] = [
        105.0, 60.0, 0.0, 0.0]
    base.loc[1, ["quota_utilization_30d_pct", "events_trend_30d_pct", "payment_failures_90d", "urgent_tickets_30d"]] = [
        20.0, -60.0, 4.0, 3.0]
    base["account_id"] = ["hot", "failing"]
    out = scorer.score(base)
    assert out.at[0, "expansion_probability"] > out.at[1, "expansion_probability"]
    assert out.at[1, "churn_probability"] > out.at[0, "churn_probability"]
    assert out.at[0, "recommended_play"] in {"upgrade_conversation", "expansion_conversation"}
    assert out.at[1, "health"] == "red"
    assert out.at[1, "recommended_play"] in {"billing_follow_up", "support_escalation", "success_plan_review",
                                               "adoption_drive"}


def test_without_models_the_baseline_stands_in(latest: pd.DataFrame) -> None:
    out = Scorer().score(latest.head(20))
    assert not out["model_available"].any()
    assert out["expansion_probability"].isna().all() and out["expected_expansion_usd"].isna().all()
    assert out["readiness_score"].tolist() == out["baseline_score"].tolist()
    assert out["health"].tolist() == out["baseline_health"].tolist()
    assert out["expansion_model_version"].isna().all()


def test_supplied_records_with_missing_features_still_score(models: tuple) -> None:
    scorer = Scorer(*models)
    records = scorer.score_records([{"account_id": "x", "quota_utilization_30d_pct": 95.0, "segment": "smb"},
                                    {"account_id": "y"}])
    assert [r["account_id"] for r in records] == ["x", "y"]
    assert all(0 <= r["expansion_probability"] <= 1 for r in records)


def test_missing_account_id_is_a_clear_error(models: tuple) -> None:
    with pytest.raises(ValueError, match="account_id"):
        Scorer(*models).score(pd.DataFrame({"segment": ["smb"]}))
