"""Orchestration: the pooled out-of-time backtest of each model, then the refit that ships.

Pure core: takes a feature frame and settings, returns results; MLflow lives in
``training.registry``. For one model:

1. Every fold of :func:`training.datasets.pooled_folds` trains a booster on the rows a job
   at that cut-off could have seen, and predicts the cut-off's month at every round count
   of ``round_grid``.
2. Rounds are chosen *prequentially*: fold ``i`` reports its predictions at the round
   count with the lowest pooled log-loss over folds ``0..i-1`` (the first fold uses
   ``FIRST_FOLD_ROUNDS``), so no reported prediction was chosen by looking at itself.
3. The pooled out-of-time predictions of all folds give every metric, for the model and
   the baseline on the same rows, with account-level bootstrap intervals
   (``training.bootstrap``). Probabilities for Brier and ECE are calibrated by cross-fitting
   over accounts (a calibration never sees the accounts it is measured on).
4. The model that ships is refit on every labelled row with the newest fold's tree sizes
   and the round count with the lowest pooled log-loss over all folds, and calibrated on
   the pooled predictions at that round count. Its logged metrics are the backtest's.
"""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from features.config import Settings
from training.baseline import BaselineClassifier
from training.bootstrap import Interval, Scores, compare, lookup
from training.datasets import LABELS, MIN_CUTOFFS, Fold, history_warning, pooled_folds, rows
from training.evaluate import HEADLINE, Evaluation, book_codes, evaluate_scores, snapshot_codes
from training.models import (
    DEFAULT_ROUNDS, Calibrator, TrainedModel, assemble, fit_booster, predict_rounds, round_grid, size_params,
)
from training.monitoring import month_spread
from training.names import MODEL_NAMES

FIRST_FOLD_ROUNDS = 100
CALIBRATION_FOLDS = 5
# Bootstrap work is rows x replicates; above this budget replicates shrink (never below the floor),
# since intervals on many rows are narrow and stable with fewer draws.
BOOTSTRAP_BUDGET, BOOTSTRAP_FLOOR = 20_000_000, 100
POOLED_COLUMNS = ("account_id", "as_of", "csm_owner", "segment", "expansion_mrr")


@dataclass
class FoldRun:
    """One fold's raw test predictions at every round count of the grid (reusable across cut-offs)."""

    fold: Fold
    params: dict[str, int]
    train_rows: int
    raw: dict[int, np.ndarray]


@dataclass
class FoldResult:
    """One cut-off: its window, the rounds it reported with, and the model and baseline on its month."""

    fold: Fold
    rounds: int
    params: dict[str, int]
    train_rows: int
    test: Evaluation
    baseline_test: Evaluation


@dataclass
class ModelResult:
    """The pooled backtest of one model and the refit model that ships."""

    name: str
    label: str
    folds: list[FoldResult]
    pooled: pd.DataFrame  # the out-of-time rows: keys, context, label, model_raw, model_probability, baseline
    test_rows: pd.DataFrame  # the same rows with every feature, in the same order (to re-score a champion on them)
    comparison: pd.DataFrame  # training.bootstrap.compare: every metric with interval and counts
    model: TrainedModel
    rounds: int
    params: dict[str, object] = field(default_factory=dict)
    warning: str | None = None
    pooled_test: Evaluation | None = None
    pooled_baseline: Evaluation | None = None

    @property
    def positives(self) -> int:
        """Positives in the pooled test months."""
        return int(self.pooled[self.label].sum())

    def interval(self, metric: str, scorer: str = "model", decision: bool = False) -> Interval:
        """One figure of the pooled comparison with its interval (``decision``: the gate's wider one)."""
        return lookup(self.comparison, scorer, metric, decision)

    def backtest_table(self) -> pd.DataFrame:
        """Per cut-off: test month, rows, positives, rounds, model and baseline ROC-AUC / PR-AUC / lift (stability)."""
        out = []
        for f in self.folds:
            row = {"test_month": f.fold.window["test_start"], "train_rows": f.train_rows,
                   "test_rows": int(f.test.metrics["rows"]), "positives": int(f.test.metrics["positives"]),
                   "rounds": f.rounds}
            for key in ("roc_auc", "pr_auc", "lift_top_decile"):
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


def log_loss(y_true: np.ndarray, raw: np.ndarray) -> float:
    """Mean binary log-loss (probabilities clipped away from 0 and 1)."""
    p = np.clip(raw, 1e-6, 1 - 1e-6)
    return float(-np.mean(y_true * np.log(p) + (1 - y_true) * np.log(1 - p)))


def best_rounds(runs: list[FoldRun], ys: list[np.ndarray], grid: tuple[int, ...]) -> int:
    """The round count with the lowest pooled log-loss over ``runs``."""
    y = np.concatenate(ys)
    losses = {r: log_loss(y, np.concatenate([run.raw[r] for run in runs])) for r in grid}
    return min(losses, key=losses.__getitem__)


def run_fold(
    name: str, frame: pd.DataFrame, fold: Fold, features: list[str], categorical: list[str],
    grid: tuple[int, ...], threads: int, fits: dict | None = None,
) -> FoldRun:
    """Train on the fold's training snapshots and predict its test month at every round count.

    ``fits`` (a dict the caller keeps) shares one booster between folds with the same training
    snapshots (:func:`training.datasets.shared_fits`): a booster trained to more rounds predicts
    the fewer ones exactly, since its first trees are the same.
    """
    label = LABELS[name]
    fits = {} if fits is None else fits
    key = (name, fold.train, tuple(features))
    if key not in fits or fits[key][0].current_iteration() < max(grid):
        train = rows(frame, fold.train, label)
        params = size_params(len(train))
        booster, levels = fit_booster(name, train, label, features, categorical, rounds=max(grid), threads=threads,
                                      params=params)
        fits[key] = (booster, levels, params, len(train))
    booster, levels, params, n_train = fits[key]
    test = rows(frame, fold.test, label)
    return FoldRun(fold, params, n_train, predict_rounds(booster, test, features, levels, grid))


def common_grid(runs: list[FoldRun]) -> tuple[int, ...]:
    """The round counts every run of ``runs`` predicted at."""
    shared = set(runs[0].raw)
    for run in runs[1:]:
        shared &= set(run.raw)
    return tuple(sorted(shared))


def next_step(grid: tuple[int, ...], rounds: int) -> int:
    """The first round count of ``grid`` above ``rounds`` (the largest when none is)."""
    return next((r for r in grid if r > rounds), grid[-1])


def capped_runs(
    name: str, frame: pd.DataFrame, folds: list[Fold], ys: list[np.ndarray], features: list[str],
    categorical: list[str], grid: tuple[int, ...], threads: int, cache: dict,
) -> list[FoldRun]:
    """Every fold's run, each trained only one grid step past the best round count of the folds before it.

    The first fold (the smallest training set) goes to the end of the grid; later folds stop
    at the step after the pooled best so far, since rounds far past it were never chosen
    (at 10,000 accounts the backtest chose 100 of 500). When the best reaches the end of
    what every fold holds, the short folds are trained further, so the cap never decides
    the choice; it only saves the rounds no fold asked for.
    """

    fits: dict = {}

    def run(fold: Fold, cap: int) -> FoldRun:
        key = (name, fold.test, fold.train, grid, tuple(features))
        if key not in cache or max(cache[key].raw) < cap:
            cache[key] = run_fold(name, frame, fold, features, categorical, tuple(r for r in grid if r <= cap), threads,
                                  fits)
        return cache[key]

    runs: list[FoldRun] = []
    for i, fold in enumerate(folds):
        cap = grid[-1] if i == 0 else next_step(grid, best_rounds(runs, ys[:i], common_grid(runs)))
        runs.append(run(fold, cap))
        while True:
            shared = common_grid(runs)
            best = best_rounds(runs, ys[:i + 1], shared)
            if best < shared[-1] or shared[-1] == grid[-1]:
                break
            runs = [run(r.fold, next_step(grid, best)) for r in runs]
    return runs


def crossfit_probabilities(raw: np.ndarray, y_true: np.ndarray, accounts: np.ndarray, groups: int = CALIBRATION_FOLDS) -> np.ndarray:
    """Calibrated probabilities where each account's rows use a calibration fitted on the other accounts only."""
    group = pd.util.hash_array(np.asarray(accounts, dtype=object)) % groups
    out = np.empty(len(raw))
    for g in range(groups):
        held = group == g
        if held.any():
            out[held] = Calibrator.fit(raw[~held], y_true[~held])(raw[held])
    return out


def replicates_for(rows_count: int, requested: int) -> int:
    """Bootstrap replicates for ``rows_count`` rows: ``requested``, fewer when the work would exceed the budget."""
    return int(min(requested, max(BOOTSTRAP_FLOOR, BOOTSTRAP_BUDGET // max(rows_count, 1))))


def train_model(
    name: str, frame: pd.DataFrame, features: list[str], categorical: list[str], settings: Settings, *,
    num_boost_round: int = DEFAULT_ROUNDS, n_cutoffs: int | None = None, fold_cache: dict | None = None,
    interval_metrics: tuple[str, ...] = HEADLINE,
) -> ModelResult:
    """Pooled backtest of ``name`` over every cut-off (or the newest ``n_cutoffs``), then the refit on all labelled rows.

    ``fold_cache`` (a dict the caller keeps) reuses fold runs across calls on frames cut at
    later dates: a fold depends only on its own training and test snapshots.
    ``interval_metrics`` are the metrics given bootstrap intervals (the gate needs ``roc_auc`` only).
    """
    if name not in LABELS:
        raise ValueError(f"model name must be one of {', '.join(LABELS)}, got {name!r}")
    check_frame(frame, features)
    label = LABELS[name]
    folds = pooled_folds(frame, label, settings.horizon_days, name=name, fit_rows=settings.backtest_fit_rows)
    if n_cutoffs is not None:
        if n_cutoffs < MIN_CUTOFFS:
            raise ValueError(f"cut-offs: at least {MIN_CUTOFFS} are needed for pooled figures, got {n_cutoffs}")
        folds = folds[-n_cutoffs:]
    grid = round_grid(num_boost_round)
    cache = fold_cache if fold_cache is not None else {}
    tests = [rows(frame, f.test, label) for f in folds]
    ys = [t[label].to_numpy(dtype=float) for t in tests]
    runs = capped_runs(name, frame, folds, ys, features, categorical, grid, settings.lgbm_threads, cache)
    first = FIRST_FOLD_ROUNDS if FIRST_FOLD_ROUNDS in grid else grid[len(grid) // 2]
    # fold i reports at the best round count of the folds before it, among those it was trained to
    chosen = [first] + [best_rounds(runs[:i], ys[:i], common_grid(runs[:i + 1])) for i in range(1, len(runs))]
    final_rounds = best_rounds(runs, ys, common_grid(runs))
    test_rows = pd.concat(tests)
    pooled = _pooled_frame(test_rows, label, [run.raw[r] for run, r in zip(runs, chosen)], name)
    result = _evaluate_pooled(name, label, pooled, settings, interval_metrics)
    fold_results = _fold_results(runs, chosen, tests, pooled, label, settings)
    final_raw = np.concatenate([run.raw[final_rounds] for run in runs])
    model = _refit(name, frame, label, features, categorical, runs[-1].params, final_rounds, final_raw, pooled, settings)
    model.metrics = _flat_metrics(result["model"], result["comparison"], "model")
    # months stray from their prediction by more than chance: the monitor's calibration band reads this
    model.metrics["calibration_month_sd"] = month_spread(pooled, label)
    model.baseline_metrics = _flat_metrics(result["baseline"], result["comparison"], "baseline")
    model.training_window = {**model.training_window, "test_start": folds[0].window["test_start"],
                             "test_end": folds[-1].window["test_end"]}
    params = {"max_rounds": num_boost_round, "rounds": final_rounds, **runs[-1].params, "cutoffs": len(folds)}
    return ModelResult(name, label, fold_results, pooled, test_rows, result["comparison"], model, final_rounds, params,
                       history_warning(folds, name), result["model"], result["baseline"])


def _pooled_frame(test: pd.DataFrame, label: str, raws: list[np.ndarray], name: str) -> pd.DataFrame:
    keep = [c for c in POOLED_COLUMNS if c in test.columns]
    pooled = test[keep + [label]].copy()
    pooled["model_raw"] = np.concatenate(raws)
    pooled["baseline"] = BaselineClassifier(name).score(test)  # type: ignore[arg-type]
    return pooled


def _evaluate_pooled(
    name: str, label: str, pooled: pd.DataFrame, settings: Settings, names: tuple[str, ...],
) -> dict[str, object]:
    y = pooled[label].to_numpy(dtype=float)
    accounts = pooled["account_id"].to_numpy()
    pooled["model_probability"] = crossfit_probabilities(pooled["model_raw"].to_numpy(), y, accounts)
    model = Scores(pooled["model_raw"].to_numpy(), pooled["model_probability"].to_numpy())
    base = pooled["baseline"].to_numpy()
    comparison = compare(
        y, {"model": model, "baseline": Scores(base, base)}, accounts, book_codes(pooled),
        replicates=replicates_for(len(y), settings.bootstrap_replicates), book_share=settings.csm_book_top_share,
        names=names, strata=snapshot_codes(pooled), decision_confidence=settings.promotion_confidence,
    )
    share = settings.csm_book_top_share
    return {
        "comparison": comparison,
        "model": evaluate_scores(pooled, label, model.ranking, share, model.probability),
        "baseline": evaluate_scores(pooled, label, base, share),
    }


def _fold_results(
    runs: list[FoldRun], chosen: list[int], tests: list[pd.DataFrame], pooled: pd.DataFrame, label: str,
    settings: Settings,
) -> list[FoldResult]:
    out, start = [], 0
    for run, rounds, test in zip(runs, chosen, tests):
        part = pooled.iloc[start:start + len(test)]
        start += len(test)
        share = settings.csm_book_top_share
        out.append(FoldResult(
            run.fold, rounds, run.params, run.train_rows,
            evaluate_scores(test, label, part["model_raw"].to_numpy(), share, part["model_probability"].to_numpy()),
            evaluate_scores(test, label, part["baseline"].to_numpy(), share),
        ))
    return out


def _refit(
    name: str, frame: pd.DataFrame, label: str, features: list[str], categorical: list[str], params: dict[str, int],
    rounds: int, pooled_raw: np.ndarray, pooled: pd.DataFrame, settings: Settings,
) -> TrainedModel:
    """Every labelled row, the backtest's settings, calibrated on the pooled out-of-time predictions."""
    labelled = frame.loc[frame[label].notna()]
    booster, levels = fit_booster(name, labelled, label, features, categorical, rounds=rounds,
                                  threads=settings.lgbm_threads, params=params)
    calibrator = Calibrator.fit(pooled_raw, pooled[label].to_numpy(dtype=float))
    model = assemble(name, booster, calibrator, features, categorical, levels, labelled, label)
    dates = pd.to_datetime(labelled["as_of"])
    model.training_window = {"train_start": dates.min().date().isoformat(), "train_end": dates.max().date().isoformat(),
                             # the newest snapshot stands for the end of the data the model was built from
                             "data_end": pd.to_datetime(frame["as_of"]).max().date().isoformat()}
    return model


def _flat_metrics(evaluation: Evaluation, comparison: pd.DataFrame, scorer: str) -> dict[str, float]:
    """Pooled point metrics with the interval ends the comparison holds, as one flat dict for the model bundle."""
    out = dict(evaluation.metrics)
    for r in comparison[comparison["scorer"] == scorer].itertuples():
        out[f"{r.metric}_low"], out[f"{r.metric}_high"] = r.low, r.high
    return out


def train_all(
    frame: pd.DataFrame, features: list[str], categorical: list[str], settings: Settings, *,
    num_boost_round: int = DEFAULT_ROUNDS, n_cutoffs: int | None = None, fold_cache: dict | None = None,
    interval_metrics: tuple[str, ...] = HEADLINE,
) -> dict[str, ModelResult]:
    """Backtest and refit both models on the same feature frame, ``Settings.training_workers`` at a time.

    The models share nothing but the read-only frame (and ``fold_cache``, keyed by model), and
    LightGBM and numpy's sorts release the GIL, so two threads keep two cores busy without
    the contention of one LightGBM on two OpenMP threads beside other work.
    """

    def one(name: str) -> ModelResult:
        return train_model(name, frame, features, categorical, settings, num_boost_round=num_boost_round,
                           n_cutoffs=n_cutoffs, fold_cache=fold_cache, interval_metrics=interval_metrics)

    workers = min(settings.training_workers, len(MODEL_NAMES))
    if workers == 1:
        return {name: one(name) for name in MODEL_NAMES}
    with ThreadPoolExecutor(max_workers=workers, thread_name_prefix="train") as pool:
        futures = {name: pool.submit(one, name) for name in MODEL_NAMES}
        return {name: future.result() for name, future in futures.items()}
