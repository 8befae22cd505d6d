"""Orchestration: train both models over a rolling backtest and evaluate each against the baseline.

Pure core: takes a feature frame and settings, returns results; MLflow lives in
``training.registry``. The model that ships is the one trained for the newest cut-off
(its test window is the newest labelled month), so the metrics logged with it are
honest out-of-time figures for exactly that model.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import pandas as pd

from features.config import Settings
from training.baseline import BaselineClassifier
from training.datasets import LABELS, Split, backtest_splits, rows
from training.evaluate import Evaluation, evaluate, expected_calibration_error
from training.models import DEFAULT_ROUNDS, TrainedModel, fit_model
from training.names import MODEL_NAMES


@dataclass
class FoldResult:
    """One cut-off of the backtest: the split, the model and its evaluation next to the baseline's."""

    split: Split
    model: TrainedModel
    test: Evaluation
    baseline_test: Evaluation
    valid_ece_raw: float
    valid_ece_calibrated: float
    train_rows: int
    valid_rows: int


@dataclass
class ModelResult:
    """Everything one training run of one model produced; ``newest`` is the fold that ships."""

    name: str
    label: str
    folds: list[FoldResult]
    params: dict[str, object] = field(default_factory=dict)

    @property
    def newest(self) -> FoldResult:
        return self.folds[-1]

    def backtest_table(self) -> pd.DataFrame:
        """Per cut-off: test window, model and baseline ROC-AUC / PR-AUC / lift."""
        out = []
        for f in self.folds:
            row = {"test_start": f.split.window["test_start"], "train_rows": f.train_rows}
            for key in ("roc_auc", "pr_auc", "lift_top_decile", "ece"):
                row[key] = f.test.metrics[key]
                row[f"baseline_{key}"] = f.baseline_test.metrics[key]
            out.append(row)
        return pd.DataFrame(out)


def check_frame(frame: pd.DataFrame, features: list[str]) -> None:
    """Raise ValueError naming every key, label or feature column the feature frame lacks."""
    needed = ["account_id", "as_of", *LABELS.values(), *features]
    missing = [c for c in needed if c not in frame.columns]
    if missing:
        raise ValueError(f"feature frame: missing column(s) {', '.join(missing[:12])}")
    if frame.duplicated(["account_id", "as_of"]).any():
        raise ValueError("feature frame: (account_id, as_of) must be unique; found duplicated rows")


def train_fold(
    name: str, frame: pd.DataFrame, split: Split, features: list[str], categorical: list[str], settings: Settings,
    num_boost_round: int = DEFAULT_ROUNDS, params: dict[str, object] | None = None,
) -> FoldResult:
    """Train one model on one split and evaluate it and the baseline on the same test rows."""
    label = LABELS[name]
    train, valid, test = rows(frame, split.train, label), rows(frame, split.valid, label), rows(frame, split.test, label)
    model = fit_model(
        name, train, valid, label, features, categorical,
        threads=settings.lgbm_threads, num_boost_round=num_boost_round, params=params,
    )
    model.training_window = split.window
    k = settings.csm_weekly_capacity
    y_valid = valid[label].to_numpy(dtype=float)
    raw_valid = model.predict_raw(valid)
    result = FoldResult(
        split=split,
        model=model,
        test=evaluate(model, test, label, k),
        baseline_test=evaluate(BaselineClassifier(name).fit(train), test, label, k),
        valid_ece_raw=expected_calibration_error(y_valid, raw_valid),
        valid_ece_calibrated=expected_calibration_error(y_valid, model.calibrator(raw_valid)),
        train_rows=len(train),
        valid_rows=len(valid),
    )
    model.metrics = dict(result.test.metrics)
    model.baseline_metrics = dict(result.baseline_test.metrics)
    return result


def train_model(
    name: str, frame: pd.DataFrame, features: list[str], categorical: list[str], settings: Settings, *,
    n_cutoffs: int = 3, num_boost_round: int = DEFAULT_ROUNDS, params: dict[str, object] | None = None,
) -> ModelResult:
    """Backtest ``name`` over ``n_cutoffs`` rolling cut-offs; the last fold's model is the one to register."""
    if name not in LABELS:
        raise ValueError(f"model name must be one of {', '.join(LABELS)}, got {name!r}")
    check_frame(frame, features)
    splits = backtest_splits(frame, LABELS[name], settings.horizon_days, n_cutoffs=n_cutoffs)
    folds = [
        train_fold(name, frame, s, features, categorical, settings, num_boost_round, params) for s in splits
    ]
    return ModelResult(name, LABELS[name], folds, params={"num_boost_round": num_boost_round, **(params or {})})


def train_all(
    frame: pd.DataFrame, features: list[str], categorical: list[str], settings: Settings, *,
    n_cutoffs: int = 3, num_boost_round: int = DEFAULT_ROUNDS,
) -> dict[str, ModelResult]:
    """Train and backtest both models on the same feature frame."""
    return {
        name: train_model(name, frame, features, categorical, settings, n_cutoffs=n_cutoffs, num_boost_round=num_boost_round)
        for name in MODEL_NAMES
    }
