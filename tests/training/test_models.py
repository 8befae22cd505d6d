"""LightGBM fitting: calibration, fixed categories, contributions, and the time-based backtest."""

from __future__ import annotations

import numpy as np
import pytest

from features.config import Settings
from training.datasets import backtest_splits, rows
from training.evaluate import expected_calibration_error
from training.models import fit_model
from training.train import train_model

@pytest.fixture
def fitted(small_frame, feature_lists):
    features, categorical = feature_lists
    split = backtest_splits(small_frame, "churned", 90, n_cutoffs=1)[0]
    train, valid = rows(small_frame, split.train, "churned"), rows(small_frame, split.valid, "churned")
    model = fit_model("churn", train, valid, "churned", features, categorical, num_boost_round=60)
    return model, train, valid


def test_calibration_keeps_or_improves_ece_on_the_validation_window(fitted):
    model, _, valid = fitted
    y = valid["churned"].to_numpy()
    raw = model.predict_raw(valid)
    assert expected_calibration_error(y, model.predict_proba(valid)) <= expected_calibration_error(y, raw) + 1e-12


def test_unseen_category_is_missing_not_an_error(fitted):
    model, _, valid = fitted
    changed = valid.head(50).copy()
    changed["region"] = "antarctica"
    proba = model.predict_proba(changed)
    assert np.isfinite(proba).all() and ((proba >= 0) & (proba <= 1)).all()
    assert model.levels["region"] == ["apac", "emea", "na"]


def test_contributions_add_up_to_the_raw_score(fitted):
    model, _, valid = fitted
    contrib = model.contributions(valid.head(20))
    assert list(contrib.columns) == model.feature_names
    raw_margin = model.booster.predict(model.matrix(valid.head(20)), raw_score=True)
    bias = model.booster.predict(model.matrix(valid.head(20)), pred_contrib=True)[:, -1]
    np.testing.assert_allclose(contrib.sum(axis=1).to_numpy() + bias, raw_margin, rtol=1e-6)


def test_missing_feature_is_named(fitted):
    model, _, valid = fitted
    with pytest.raises(ValueError, match="payment_failures_90d"):
        model.predict_proba(valid.drop(columns=["payment_failures_90d"]))


def test_model_finds_the_signal_and_beats_a_noise_only_model(small_frame, feature_lists):
    features, categorical = feature_lists
    settings = Settings(home="unused")
    real = train_model("churn", small_frame, features, categorical, settings, n_cutoffs=1, num_boost_round=80)
    noise = train_model("churn", small_frame, ["noise_a", "noise_b"], [], settings, n_cutoffs=1, num_boost_round=80)
    assert real.newest.test.metrics["roc_auc"] > noise.newest.test.metrics["roc_auc"] + 0.1
    top = real.newest.model.importance()["feature"].head(3).tolist()
    assert "payment_failures_90d" in top or "events_trend_30d_pct" in top


def test_one_class_training_window_is_refused(small_frame, feature_lists):
    features, categorical = feature_lists
    frame = small_frame.copy()
    frame.loc[frame["churned"].notna(), "churned"] = 0.0
    with pytest.raises(ValueError, match="only one class"):
        train_model("churn", frame, features, categorical, Settings(home="unused"), n_cutoffs=1, num_boost_round=5)


def test_expansion_size_ratio_is_the_median_annual_expansion_over_arr_per_segment():
    import pandas as pd

    from training.models import expansion_size_ratios

    frame = pd.DataFrame({
        "segment": ["smb"] * 3 + ["enterprise"] * 3 + ["smb"],
        "arr": [1200.0, 2400.0, 1200.0, 120000.0, 120000.0, 240000.0, 1200.0],
        "expansion_mrr": [10.0, 40.0, 30.0, 1000.0, 3000.0, 2000.0, 0.0],
        "expanded": [1, 1, 1, 1, 1, 1, 0],
    })
    ratios = expansion_size_ratios(frame, min_rows=3)
    # smb: 12*10/1200=0.1, 12*40/2400=0.2, 12*30/1200=0.3; enterprise: 0.1, 0.3, 0.1
    assert ratios == pytest.approx({"*": 0.15, "smb": 0.2, "enterprise": 0.1})
    assert expansion_size_ratios(frame, min_rows=4) == pytest.approx({"*": 0.15})
    assert expansion_size_ratios(frame.drop(columns="expansion_mrr")) == {}


def test_bundle_round_trip_keeps_predictions_and_expansion_size(tmp_path, feature_frame):
    from features.registry import categorical_features, feature_names
    from training.registry import load_bundle, save_bundle

    features, categorical = feature_names(), categorical_features()
    split = backtest_splits(feature_frame, "expanded", 90, n_cutoffs=1)[0]
    train, valid = rows(feature_frame, split.train, "expanded"), rows(feature_frame, split.valid, "expanded")
    model = fit_model("expansion", train, valid, "expanded", features, categorical, num_boost_round=30)
    assert model.expansion_size_ratio["*"] > 0
    loaded = load_bundle(save_bundle(model, tmp_path / "bundle"))
    assert loaded.expansion_size_ratio == model.expansion_size_ratio
    np.testing.assert_allclose(loaded.predict_proba(valid), model.predict_proba(valid))
