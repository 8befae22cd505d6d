"""LightGBM fitting: calibration, fixed categories, contributions, and the time-based backtest."""

from __future__ import annotations

import numpy as np
import pytest

from features.config import Settings
from training.datasets import pooled_folds, rows
from training.evaluate import expected_calibration_error
from training.models import BAG_ROWS, Calibrator, fit_model, round_grid, size_params
from training.train import train_model


def _train_valid(frame, label):
    """The newest fold's training months, the last two held out as a validation window."""
    fold = pooled_folds(frame, label, 90)[-1]
    return rows(frame, fold.train[:-2], label), rows(frame, fold.train[-2:], label)


@pytest.fixture
def fitted(small_frame, feature_lists):
    features, categorical = feature_lists
    train, valid = _train_valid(small_frame, "churned")
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
    real = train_model("churn", small_frame, features, categorical, settings, num_boost_round=80)
    noise = train_model("churn", small_frame, ["noise_a", "noise_b"], [], settings, num_boost_round=80)
    assert real.interval("roc_auc").low > noise.interval("roc_auc").high
    assert noise.interval("roc_auc").low < 0.5 < noise.interval("roc_auc").high
    top = real.model.importance()["feature"].head(3).tolist()
    assert "payment_failures_90d" in top or "events_trend_30d_pct" in top


def test_one_class_training_window_is_refused(small_frame, feature_lists):
    features, categorical = feature_lists
    frame = small_frame.copy()
    frame.loc[frame["churned"].notna(), "churned"] = 0.0
    with pytest.raises(ValueError, match="only one class"):
        train_model("churn", frame, features, categorical, Settings(home="unused"), num_boost_round=5)


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
    train, valid = _train_valid(feature_frame, "expanded")
    model = fit_model("expansion", train, valid, "expanded", features, categorical, num_boost_round=30)
    assert model.expansion_size_ratio["*"] > 0
    loaded = load_bundle(save_bundle(model, tmp_path / "bundle"))
    assert loaded.expansion_size_ratio == model.expansion_size_ratio
    np.testing.assert_allclose(loaded.predict_proba(valid), model.predict_proba(valid))


def test_tree_size_grows_with_the_rows_and_stays_within_bounds():
    small, medium, large = size_params(800), size_params(20_000), size_params(2_000_000)
    assert small == {"num_leaves": 4, "min_data_in_leaf": 20, "bagging_fraction": 0.8}
    # each tree draws 80 % of the rows, never more than BAG_ROWS
    assert medium["bagging_fraction"] == 0.8 and large["bagging_fraction"] * 2_000_000 == pytest.approx(BAG_ROWS)
    assert small["num_leaves"] <= medium["num_leaves"] <= large["num_leaves"] == 31
    assert small["min_data_in_leaf"] <= medium["min_data_in_leaf"] <= large["min_data_in_leaf"] == 100
    assert round_grid(120) == (25, 50, 100, 120) and round_grid(500)[-1] == 500


def test_platt_holds_at_a_few_dozen_positives_and_isotonic_needs_many():
    rng = np.random.default_rng(4)
    raw = rng.uniform(0.01, 0.6, 400)
    truth = np.clip(raw * 0.5, 0, 1)  # the raw scores are twice too high
    y = (rng.random(400) < truth).astype(float)
    assert 20 <= y.sum() <= 80
    cal = Calibrator.fit(raw, y)
    assert cal.method == "platt"
    out = cal(np.sort(raw))
    assert np.all(np.diff(out) >= 0)  # ranking kept
    assert abs(out.mean() - y.mean()) < 0.02 and expected_calibration_error(y, cal(raw)) < expected_calibration_error(y, raw)
    # A score that ranks backwards carries no usable signal: every account gets the base rate.
    flat = Calibrator.platt(raw, (raw < 0.1).astype(float))
    assert np.ptp(flat(raw)) == 0 and flat(raw)[0] == pytest.approx((raw < 0.1).mean())
    many = rng.uniform(0, 1, 5000)
    assert Calibrator.fit(many, (rng.random(5000) < many).astype(float)).method == "isotonic"
