"""The Scorer on a small generated feature frame with real LightGBM models trained by training.models."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from serving.scoring.scorer import SCORE_COLUMNS, Scorer, feature_specs


@pytest.fixture(scope="module")
def frame(make_frame) -> pd.DataFrame:  # noqa: ANN001 - conftest fixture
    return make_frame()


@pytest.fixture(scope="module")
def models(frame: pd.DataFrame, train_models) -> tuple[object, object]:  # noqa: ANN001 - conftest fixture
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
    # context (segment) is never a reason, so an account without a distinct driver has none
    assert out["reasons"].map(len).between(0, 5).all() and out["reasons"].map(len).gt(0).mean() > 0.5
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
    everyone = scorer.score(latest.head(10), with_reasons=True)
    with_drivers = everyone["reasons"].map(len).to_numpy().nonzero()[0]
    assert len(with_drivers) >= 2  # most accounts have a distinct driver when asked
    asked = with_drivers[[0, -1]].tolist()
    mask = np.zeros(10, dtype=bool)
    mask[asked] = True
    out = scorer.score(latest.head(10), with_reasons=mask)
    assert out["reasons"].map(len).to_numpy().nonzero()[0].tolist() == asked
    assert out["recommended_play"].isna().sum() == 8
    details = out.at[asked[0], "reason_details"]
    assert all(d["feature"] in models[0].feature_names for d in details)
    for d in details:  # the sign says the side: against the expansion model's base value, or a churn risk
        assert (d["side"] == "lifts") == (d["effect"] == "expansion" and d["contribution"] > 0), d


def test_a_hot_account_gets_an_upgrade_play_and_a_failing_one_a_risk_play(models: tuple, latest: pd.DataFrame) -> None:
    scorer = Scorer(*models).with_reference(latest)
    base = latest.iloc[[0, 0]].reset_index(drop=True).copy()
    base.loc[0, ["quota_utilization_30d_pct", "events_trend_30d_pct", "payment_failures_90d", "urgent_tickets_30d"]] = [
        105.0, 60.0, 0.0, 0.0]
    base.loc[1, ["quota_utilization_30d_pct", "events_trend_30d_pct", "payment_failures_90d", "urgent_tickets_30d"]] = [
        20.0, -60.0, 4.0, 3.0]
    base["account_id"] = ["hot", "failing"]
    # the upgrade play's premise and talk track need the next tier's price and the plan's figures
    base["whitespace_tier_usd"], base["events_30d"], base["seats"] = 9_600.0, 52_500.0, 20.0
    out = scorer.score(base)
    assert out.at[0, "expansion_probability"] > out.at[1, "expansion_probability"]
    assert out.at[1, "churn_probability"] > out.at[0, "churn_probability"]
    assert out.at[0, "recommended_play"] == "upgrade_conversation"
    assert "52,500 events in the last 30 days, 105 % of its plan's limit of 50,000" in out.at[0, "recommended_play_text"]
    assert out.at[1, "health"] == "red"
    assert out.at[1, "recommended_play"] in {"billing_follow_up", "support_escalation"}
    assert "4 failed" in out.at[1, "recommended_play_text"] or "3 urgent" in out.at[1, "recommended_play_text"]
    without_tier = scorer.score(base.drop(columns=["whitespace_tier_usd"]).iloc[[0]])  # no next tier known: no upgrade talk
    assert without_tier.at[0, "recommended_play"] != "upgrade_conversation"


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


def test_the_vectorised_reasons_are_the_per_record_reasons(models: tuple, latest: pd.DataFrame) -> None:
    scorer = Scorer(*models, feature_specs()).with_reference(latest)
    out = scorer.score(latest.head(40))
    for i in range(40):  # one account alone, measured against the same book, reads the same
        one = scorer.score(latest.iloc[[i]])
        assert one.at[0, "reason_details"] == out.at[i, "reason_details"], latest.at[i, "account_id"]
        assert one.at[0, "recommended_play"] == out.at[i, "recommended_play"]
        assert one.at[0, "recommended_play_text"] == out.at[i, "recommended_play_text"]


def test_reasons_are_one_per_concept_with_a_comparison_and_plays_hold_in_the_accounts_numbers(
        models: tuple, latest: pd.DataFrame) -> None:
    import re

    from features.reason_catalog import PLAY_BY_NAME

    scorer = Scorer(*models, feature_specs()).with_reference(latest)
    out = scorer.score(latest)
    for i, details in enumerate(out["reason_details"]):
        concepts = [d["concept"] for d in details]
        for side in ("lifts", "holds_back"):
            on_side = [d["concept"] for d in details if d["side"] == side]
            assert len(on_side) == len(set(on_side)) and len(on_side) <= 3
        assert len(concepts) == len(set(concepts))  # a concept stands on one side only
        assert all(re.search(r"\d %", d["text"]) for d in details if d["comparison"] != "timing"), details
        lifts = [d["text"] for d in details if d["side"] == "lifts"]
        assert (out.at[i, "why_high"] == " · ".join(lifts)) if lifts else pd.isna(out.at[i, "why_high"])
        facts = {**latest.iloc[i].to_dict(), "readiness_score": out.at[i, "readiness_score"], "health": out.at[i, "health"]}
        assert PLAY_BY_NAME[out.at[i, "recommended_play"]].premise_holds(facts)
        assert not re.search(r"[{}]|None|nan", out.at[i, "recommended_play_text"])
    assert out["reasons"].map(len).ge(2).mean() > 0.5  # 8 model features in 7 concepts here


def test_reasons_explain_the_accounts_standing_and_never_contradict_the_registry(models: tuple, latest: pd.DataFrame) -> None:
    specs = feature_specs()
    scorer = Scorer(*models, specs).with_reference(latest)
    out = scorer.score(latest)
    effects = out["reason_details"].map(lambda ds: {d["effect"] for d in ds})
    assert not any("churn_risk" in e for e in effects[out["health"] == "green"])  # the churn model explains risk
    assert (effects[out["health"] != "green"].map(len) == 2).any()
    sides = out["reason_details"].map(lambda ds: {d["side"] for d in ds})
    low = out["readiness_score"] < 40
    assert sides[low].map(lambda s: "holds_back" in s).mean() >= 0.9  # a low score is explained
    trend = latest["events_trend_30d_pct"]
    for i, details in enumerate(out["reason_details"]):
        for d in details:
            if d["feature"] == "events_trend_30d_pct":  # a rise never holds back, a fall never lifts
                assert (trend[i] >= 5) if d["side"] == "lifts" else (trend[i] <= -5)
            if d["feature"] == "payment_failures_90d" and d["side"] == "lifts":
                assert latest.at[i, "payment_failures_90d"] <= scorer.reference_typical_["payment_failures_90d"]


def test_more_contribution_threads_give_the_same_reasons(models: tuple, latest: pd.DataFrame) -> None:
    from dataclasses import replace

    scorer = Scorer(*models, feature_specs()).with_reference(latest)
    one, two = scorer.score(latest.head(60)), replace(scorer, contribution_threads=2).score(latest.head(60))
    assert one["reasons"].tolist() == two["reasons"].tolist()
    details = [[d["contribution"] for d in ds] for ds in one["reason_details"]]
    assert details == [[d["contribution"] for d in ds] for ds in two["reason_details"]]


def test_a_record_with_no_known_feature_scores_with_no_reasons(models: tuple) -> None:
    scorer = Scorer(*models, feature_specs())
    records = scorer.score_records([{"account_id": "bare"}])  # no feature column at all, as a caller may send
    assert records[0]["account_id"] == "bare" and records[0]["reasons"] == []
    assert records[0]["recommended_play"] is not None
    mixed = scorer.score_records([{"account_id": "bare"}, {"account_id": "x", "quota_utilization_30d_pct": 105.0}])
    assert mixed[0]["reasons"] == [] and mixed[1]["expansion_probability"] > mixed[0]["expansion_probability"]


def test_expected_expansion_is_priced_at_the_learned_deal_size_capped_by_whitespace(models: tuple, latest: pd.DataFrame) -> None:
    from dataclasses import replace

    expansion, churn = models
    sized = replace(expansion, expansion_size_ratio={"*": 0.1, "smb": 0.3})
    rows = latest.head(60).copy()
    rows["arr"] = 12_000.0
    rows["segment"] = ["smb", "enterprise", None] * 20
    rows["whitespace_usd"] = [2_000.0, 50_000.0, np.nan] * 20
    out = Scorer(sized, churn, feature_specs()).with_reference(latest).score(rows, with_reasons=False)
    # smb: min(2,000, 12,000 x 0.3); other segment and unknown segment: overall ratio 0.1
    deal = np.array([min(2_000.0, 3_600.0), min(50_000.0, 1_200.0), 1_200.0] * 20)
    assert np.allclose(out["expected_expansion_usd"], out["expansion_probability"] * deal)
    unsized = Scorer(expansion, churn, feature_specs()).with_reference(latest).score(rows, with_reasons=False)
    assert np.allclose(unsized["expected_expansion_usd"].fillna(-1), (unsized["expansion_probability"] * rows["whitespace_usd"]).fillna(-1))


def test_money_is_written_in_the_datasets_currency(models: tuple, latest: pd.DataFrame) -> None:
    hot = latest.iloc[[0]].reset_index(drop=True).copy()  # the upgrade talk track names the next tier's price
    hot[["quota_utilization_30d_pct", "events_trend_30d_pct", "payment_failures_90d", "urgent_tickets_30d"]] = [
        105.0, 60.0, 0.0, 0.0]
    hot["whitespace_tier_usd"], hot["events_30d"], hot["seats"] = 9_600.0, 52_500.0, 20.0
    dollars = Scorer(*models).with_reference(latest).score(hot).at[0, "recommended_play_text"]
    euros = Scorer(*models, currency_symbol="€").with_reference(latest).score(hot).at[0, "recommended_play_text"]
    assert "$9,600" in dollars and "$" not in euros and "€9,600" in euros
    assert euros.replace("€", "$") == dollars
