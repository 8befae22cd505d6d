"""LightGBM classifiers with calibration: fitting, and the TrainedModel that serving uses.

Class imbalance is handled deliberately by *not* reweighting: an unweighted log-loss
keeps scores close to probabilities and calibration fixes what is left.
``scale_pos_weight`` would buy nothing for ranking (AUC, lift) and would distort the
probabilities CS teams read.

Tree size follows the number of training rows (:func:`size_params`): a company of a few
hundred accounts gets a few leaves of a few dozen rows each, a large one the full 31
leaves of 100 rows. The number of rounds is chosen by the pooled backtest
(``training.train``) from ``round_grid``. Calibration (:class:`Calibrator`) is Platt
scaling on the logit below ``ISOTONIC_MIN_POSITIVES`` positives (two parameters hold at a
few dozen positives) and isotonic regression above.

Two generic regularisers are set with small books in mind. ``lambda_l2`` is counted in the
units of the log-loss hessian, p(1 - p) per row, which for a rare outcome is about one per
positive: 10 shrinks a leaf's value as if it held ten more positives' worth of "no change",
which halves the value of a leaf holding about ten positives' worth and fades as leaves
grow (a leaf of 1,000 rows at a 7 % rate holds about 65). ``feature_fraction`` 0.5 gives
each tree half of the features: the frame holds several windows of the same signal (7, 30 and 90 days), and
trees that cannot all lean on the same noisy one average out better. Both were measured
against the former 1.0 / 0.8 on ten generated companies in one run (benchmarks/README.md):
the expansion gain over the baseline rose by 0.012 ROC-AUC on average.

Categorical features use pandas ``category`` dtype with the levels seen in training,
fixed in the model; a level unseen at training time becomes NaN (LightGBM's missing).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import lightgbm as lgb
import numpy as np
import pandas as pd
from sklearn.isotonic import IsotonicRegression
from sklearn.linear_model import LogisticRegression

DEFAULT_PARAMS: dict[str, object] = {
    "objective": "binary",
    "learning_rate": 0.05,
    "num_leaves": 31,
    "min_data_in_leaf": 100,
    "feature_fraction": 0.5,
    "bagging_fraction": 0.8,
    "bagging_freq": 1,
    "lambda_l2": 10.0,
    "metric": ["binary_logloss", "auc"],
    "first_metric_only": True,
    "verbosity": -1,
    "seed": 7,
    "deterministic": True,
    "force_row_wise": True,
}
DEFAULT_ROUNDS = 500
# Rows each tree draws at most: past this, a tree's histograms are already stable, and the cost of a
# round follows the rows drawn (at 300,000 rows a round took 0.19 s drawing 80 %, 0.10 s drawing 15 %).
BAG_ROWS = 50_000
ROUND_STEPS = (25, 50, 100, 200, 300, 500, 800)
PROB_FLOOR = 0.001
EARLY_STOPPING_ROUNDS = 50
ISOTONIC_MIN_POSITIVES = 500
# Platt curves are stored as breakpoints over this logit range, so serving interpolates as for isotonic.
PLATT_LOGIT_GRID = np.linspace(-10.0, 10.0, 201)


def size_params(train_rows: int) -> dict[str, float]:
    """Tree size and row sampling for ``train_rows`` rows.

    About 1 % of the rows per leaf (20-100) and 10 leaves' worth per leaf cap (4-31); each tree
    draws 80 % of the rows, but never more than ``BAG_ROWS``.
    """
    min_leaf = int(np.clip(round(train_rows / 100), 20, 100))
    leaves = int(np.clip(train_rows // (10 * min_leaf), 4, 31))
    bagging = round(min(float(DEFAULT_PARAMS["bagging_fraction"]), BAG_ROWS / max(train_rows, 1)), 4)
    return {"num_leaves": leaves, "min_data_in_leaf": min_leaf, "bagging_fraction": bagging}


def round_grid(max_rounds: int) -> tuple[int, ...]:
    """The round counts the backtest compares: the fixed steps up to ``max_rounds``, and ``max_rounds`` itself."""
    return tuple(sorted({r for r in ROUND_STEPS if r < max_rounds} | {max_rounds}))


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


def _logit(p: np.ndarray) -> np.ndarray:
    p = np.clip(np.asarray(p, dtype=float), 1e-6, 1 - 1e-6)
    return np.log(p / (1 - p))


@dataclass
class Calibrator:
    """Monotone map from raw model probability to calibrated probability, stored as breakpoints."""

    x: np.ndarray
    y: np.ndarray
    method: str = "breakpoints"

    @classmethod
    def fit(cls, raw: np.ndarray, y_true: np.ndarray, isotonic_min_positives: int = ISOTONIC_MIN_POSITIVES) -> Calibrator:
        """Platt scaling on the logit below ``isotonic_min_positives`` positives, isotonic regression from there."""
        y_true = np.asarray(y_true, dtype=float)
        if y_true.sum() >= isotonic_min_positives and (len(y_true) - y_true.sum()) >= isotonic_min_positives:
            return cls.isotonic(raw, y_true)
        return cls.platt(raw, y_true)

    @classmethod
    def isotonic(cls, raw: np.ndarray, y_true: np.ndarray) -> Calibrator:
        """Isotonic regression of ``y_true`` on ``raw`` (clipped outside the seen range)."""
        # Isotonic steps are exactly 0 where no positive fell in a score range; a hard 0 %
        # reads as certainty to a CSM, so probabilities are kept off the ends.
        iso = IsotonicRegression(out_of_bounds="clip", y_min=PROB_FLOOR, y_max=1.0 - PROB_FLOOR).fit(raw, y_true)
        return cls(np.asarray(iso.X_thresholds_, dtype=float), np.asarray(iso.y_thresholds_, dtype=float), "isotonic")

    @classmethod
    def platt(cls, raw: np.ndarray, y_true: np.ndarray) -> Calibrator:
        """Logistic regression of ``y_true`` on logit(``raw``), kept non-decreasing (a negative slope becomes the base rate)."""
        y_true = np.asarray(y_true, dtype=float)
        rate = float(np.clip(y_true.mean(), PROB_FLOOR, 1 - PROB_FLOOR)) if len(y_true) else 0.5
        x = 1.0 / (1.0 + np.exp(-PLATT_LOGIT_GRID))
        if 0 < y_true.sum() < len(y_true):
            fit = LogisticRegression(C=1e4).fit(_logit(raw).reshape(-1, 1), y_true)
            slope, intercept = float(fit.coef_[0, 0]), float(fit.intercept_[0])
        else:
            slope, intercept = 0.0, 0.0
        # A model that ranks worse than chance out of time carries no usable signal: the base rate is the honest answer.
        y = np.full_like(x, rate) if slope <= 0 else 1.0 / (1.0 + np.exp(-(intercept + slope * PLATT_LOGIT_GRID)))
        return cls(x, np.clip(y, PROB_FLOOR, 1.0 - PROB_FLOOR), "platt")

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
    # Identity beyond the version number every registry starts at 1: the MLflow run that
    # logged the model and the registry it came from (tracking URI without credentials).
    run_id: str | None = None
    registry_uri: str | None = None

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
    """Train a LightGBM binary model on ``train``, early-stopped and calibrated on ``valid`` (a quick single split).

    The monthly job does not use this: it backtests with :func:`fit_booster` and refits on
    all history (``training.train``).
    """
    categorical = [c for c in categorical if c in features]
    levels = category_levels(train, categorical)
    y_train, y_valid = train[label].to_numpy(dtype=float), valid[label].to_numpy(dtype=float)
    for part, y in (("training", y_train), ("validation", y_valid)):
        check_two_classes(name, part, y, label)
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


def check_two_classes(name: str, part: str, y: np.ndarray, label: str) -> None:
    """ValueError naming the window when ``y`` holds one class only."""
    if y.min(initial=1.0) == y.max(initial=0.0):
        raise ValueError(f"{name}: the {part} window has only one class in {label!r}; cannot train")


def fit_booster(
    name: str, train: pd.DataFrame, label: str, features: list[str], categorical: list[str], *,
    rounds: int, threads: int = 1, params: dict[str, object] | None = None,
) -> tuple[lgb.Booster, dict[str, list[str]]]:
    """A booster trained for exactly ``rounds`` rounds (no early stopping: the backtest chose them) and its category levels."""
    categorical = [c for c in categorical if c in features]
    levels = category_levels(train, categorical)
    y_train = train[label].to_numpy(dtype=float)
    check_two_classes(name, "training", y_train, label)
    full_params = {**DEFAULT_PARAMS, **(params or {}), "num_threads": threads}
    full_params.pop("metric", None)
    dtrain = lgb.Dataset(prepare(train, features, levels), y_train, categorical_feature=categorical or "auto")
    return lgb.train(full_params, dtrain, num_boost_round=rounds), levels


def predict_rounds(
    booster: lgb.Booster, frame: pd.DataFrame, features: list[str], levels: dict[str, list[str]], rounds: tuple[int, ...],
) -> dict[int, np.ndarray]:
    """Raw probabilities of ``frame`` after each of ``rounds`` boosting rounds.

    One pass over the trees: each step adds the raw scores of the trees since the previous
    round count, instead of re-running every tree from the first for each count.
    """
    x = prepare(frame, features, levels)
    out, raw, start = {}, np.zeros(len(x)), 0
    for r in sorted(rounds):
        if r > start:
            raw = raw + booster.predict(x, start_iteration=start, num_iteration=r - start, raw_score=True, num_threads=1)
            start = r
        out[r] = 1.0 / (1.0 + np.exp(-raw))
    return out


def assemble(
    name: str, booster: lgb.Booster, calibrator: Calibrator, features: list[str], categorical: list[str],
    levels: dict[str, list[str]], train: pd.DataFrame, label: str,
) -> TrainedModel:
    """The TrainedModel of a fitted booster and calibrator (expansion size ratios learned from ``train``)."""
    return TrainedModel(
        name=name,
        booster=booster,
        calibrator=calibrator,
        feature_names=list(features),
        categorical_features=[c for c in categorical if c in features],
        levels=levels,
        expansion_size_ratio=expansion_size_ratios(train) if label == "expanded" else {},
    )


def _truncate(booster: lgb.Booster) -> lgb.Booster:
    """A booster holding only the best iteration's trees, so every later predict uses exactly those."""
    return lgb.Booster(model_str=booster.model_to_string(num_iteration=booster.best_iteration))
