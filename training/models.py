"""LightGBM classifiers with calibration: fitting, and the TrainedModel that serving uses.

Class imbalance is handled deliberately by *not* reweighting: expansion and churn rates
of a few to a few tens of percent leave enough positives per leaf (``min_data_in_leaf``
~100), an unweighted log-loss keeps scores close to probabilities, and isotonic
calibration on the validation window then fixes what is left. ``scale_pos_weight`` would
buy nothing for ranking (AUC, lift) and would distort the probabilities CS teams read.

Categorical features use pandas ``category`` dtype with the levels seen in training,
fixed in the model; a level unseen at training time becomes NaN (LightGBM's missing).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import lightgbm as lgb
import numpy as np
import pandas as pd
from sklearn.isotonic import IsotonicRegression

DEFAULT_PARAMS: dict[str, object] = {
    "objective": "binary",
    "learning_rate": 0.05,
    "num_leaves": 31,
    "min_data_in_leaf": 100,
    "feature_fraction": 0.8,
    "bagging_fraction": 0.8,
    "bagging_freq": 1,
    "lambda_l2": 1.0,
    "metric": ["binary_logloss", "auc"],
    "first_metric_only": True,
    "verbosity": -1,
    "seed": 7,
    "deterministic": True,
    "force_row_wise": True,
}
DEFAULT_ROUNDS = 500
PROB_FLOOR = 0.001
EARLY_STOPPING_ROUNDS = 50


def category_levels(frame: pd.DataFrame, categorical: list[str]) -> dict[str, list[str]]:
    """The sorted non-null levels of each categorical column, as seen in ``frame``."""
    return {c: sorted(frame[c].dropna().astype(str).unique().tolist()) for c in categorical}


def prepare(frame: pd.DataFrame, features: list[str], levels: dict[str, list[str]]) -> pd.DataFrame:
    """The model matrix: features in order, categoricals with fixed levels (unseen -> NaN), numerics as float."""
    missing = [f for f in features if f not in frame.columns]
    if missing:
        raise ValueError(f"feature frame: missing feature column(s) {', '.join(missing[:10])} required by the model")
    out = {}
    for f in features:
        if f in levels:
            out[f] = pd.Categorical(frame[f].astype("string").astype(object), categories=levels[f])
        else:
            out[f] = pd.to_numeric(frame[f], errors="coerce").astype("float64")
    return pd.DataFrame(out, index=frame.index)


@dataclass
class Calibrator:
    """Isotonic map from raw model probability to calibrated probability, stored as its breakpoints."""

    x: np.ndarray
    y: np.ndarray

    @classmethod
    def fit(cls, raw: np.ndarray, y_true: np.ndarray) -> Calibrator:
        """Fit isotonic regression of ``y_true`` on ``raw`` (clipped outside the seen range)."""
        # Isotonic steps are exactly 0 where the validation window had no positive in a score
        # range; a hard 0 % reads as certainty to a CSM, so probabilities are kept off the ends.
        iso = IsotonicRegression(out_of_bounds="clip", y_min=PROB_FLOOR, y_max=1.0 - PROB_FLOOR).fit(raw, y_true)
        return cls(np.asarray(iso.X_thresholds_, dtype=float), np.asarray(iso.y_thresholds_, dtype=float))

    def __call__(self, raw: np.ndarray) -> np.ndarray:
        return np.interp(raw, self.x, self.y)


@dataclass
class TrainedModel:
    """A booster with its calibration, feature list and category levels: everything serving needs."""

    name: str
    booster: lgb.Booster
    calibrator: Calibrator
    feature_names: list[str]
    categorical_features: list[str]
    levels: dict[str, list[str]]
    version: str = "unregistered"
    metrics: dict[str, float] = field(default_factory=dict)
    baseline_metrics: dict[str, float] = field(default_factory=dict)
    training_window: dict[str, str] = field(default_factory=dict)
    # Typical annual value of one expansion relative to the account's ARR, learned from the
    # training window (by segment, key "*" for all): turns a probability into expected dollars.
    expansion_size_ratio: dict[str, float] = field(default_factory=dict)

    def matrix(self, frame: pd.DataFrame) -> pd.DataFrame:
        """The frame as the booster expects it."""
        return prepare(frame, self.feature_names, self.levels)

    def predict_raw(self, frame: pd.DataFrame) -> np.ndarray:
        """Uncalibrated booster probability."""
        return self.booster.predict(self.matrix(frame), num_threads=1)

    def predict_proba(self, frame: pd.DataFrame) -> np.ndarray:
        """Calibrated probability of the positive class, one value per row."""
        return self.calibrator(self.predict_raw(frame))

    def contributions(self, frame: pd.DataFrame, threads: int = 1) -> pd.DataFrame:
        """LightGBM ``pred_contrib`` per feature in raw-score units (the bias column is dropped).

        One thread suits a shared process such as the service; a batch job alone on the
        machine may pass more.
        """
        contrib = self.booster.predict(self.matrix(frame), pred_contrib=True, num_threads=threads)
        return pd.DataFrame(contrib[:, :-1], columns=self.feature_names, index=frame.index)

    def importance(self) -> pd.DataFrame:
        """Total gain per feature, largest first."""
        gain = self.booster.feature_importance(importance_type="gain")
        out = pd.DataFrame({"feature": self.feature_names, "gain": gain})
        return out.sort_values("gain", ascending=False, ignore_index=True)


def expansion_size_ratios(train: pd.DataFrame, min_rows: int = 20) -> dict[str, float]:
    """Median of annualised expansion MRR / ARR over expanded training rows, per segment and overall ("*").

    Whitespace says how much an account could still buy; this says how much one expansion
    actually added for similar accounts, so expected value = probability x the smaller of the two.
    Segments with fewer than ``min_rows`` expansions fall back to the overall median.
    """
    needed = {"expanded", "expansion_mrr", "arr"}
    if not needed <= set(train.columns):
        return {}
    rows = train[(train["expanded"] == 1) & (train["arr"] > 0) & (train["expansion_mrr"] > 0)]
    if rows.empty:
        return {}
    ratio = 12.0 * rows["expansion_mrr"].astype(float) / rows["arr"].astype(float)
    out = {"*": float(ratio.median())}
    if "segment" in rows.columns:
        for segment, values in ratio.groupby(rows["segment"].astype("string")):
            if len(values) >= min_rows:
                out[str(segment)] = float(values.median())
    return out


def fit_model(
    name: str,
    train: pd.DataFrame,
    valid: pd.DataFrame,
    label: str,
    features: list[str],
    categorical: list[str],
    *,
    threads: int = 1,
    num_boost_round: int = DEFAULT_ROUNDS,
    params: dict[str, object] | None = None,
) -> TrainedModel:
    """Train a LightGBM binary model on ``train``, early-stopped and isotonic-calibrated on ``valid``."""
    categorical = [c for c in categorical if c in features]
    levels = category_levels(train, categorical)
    y_train, y_valid = train[label].to_numpy(dtype=float), valid[label].to_numpy(dtype=float)
    for part, y in (("training", y_train), ("validation", y_valid)):
        if y.min(initial=1.0) == y.max(initial=0.0):
            raise ValueError(f"{name}: the {part} window has only one class in {label!r}; cannot train")
    x_train, x_valid = prepare(train, features, levels), prepare(valid, features, levels)
    full_params = {**DEFAULT_PARAMS, **(params or {}), "num_threads": threads}
    dtrain = lgb.Dataset(x_train, y_train, categorical_feature=categorical or "auto", free_raw_data=True)
    dvalid = lgb.Dataset(x_valid, y_valid, reference=dtrain)
    booster = lgb.train(
        full_params,
        dtrain,
        num_boost_round=num_boost_round,
        valid_sets=[dvalid],
        valid_names=["valid"],
        callbacks=[lgb.early_stopping(EARLY_STOPPING_ROUNDS, first_metric_only=True, verbose=False)],
    )
    raw_valid = booster.predict(x_valid, num_iteration=booster.best_iteration, num_threads=threads)
    booster = booster if booster.best_iteration <= 0 else _truncate(booster)
    return TrainedModel(
        name=name,
        booster=booster,
        calibrator=Calibrator.fit(raw_valid, y_valid),
        feature_names=list(features),
        categorical_features=categorical,
        levels=levels,
        expansion_size_ratio=expansion_size_ratios(train) if label == "expanded" else {},
    )


def _truncate(booster: lgb.Booster) -> lgb.Booster:
    """A booster holding only the best iteration's trees, so every later predict uses exactly those."""
    return lgb.Booster(model_str=booster.model_to_string(num_iteration=booster.best_iteration))
