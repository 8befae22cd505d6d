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
