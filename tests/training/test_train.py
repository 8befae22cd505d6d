"""The pooled backtest and the refit: out-of-time predictions, prequential rounds, the model that ships."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from features.config import Settings
from training.datasets import HistoryError, pooled_folds
from training.train import FIRST_FOLD_ROUNDS, train_model


@pytest.fixture(scope="module")
def churn_result():
    from tests.training.conftest import CATEGORICAL, NUMERIC, make_frame

    frame = make_frame()
    settings = Settings(_env_file=None, home="unused", bootstrap_replicates=200)
    return frame, train_model("churn", frame, NUMERIC + CATEGORICAL, CATEGORICAL, settings, num_boost_round=200)


def test_pooled_rows_are_exactly_the_test_months_of_every_fold(churn_result):
    frame, result = churn_result
    folds = pooled_folds(frame, "churned", 90)
    assert [f.fold.test for f in result.folds] == [f.test for f in folds]
    labelled = frame[frame["churned"].notna()]
    expected = labelled[labelled["as_of"].isin([f.test for f in folds])]
    assert len(result.pooled) == len(expected) and not result.pooled.duplicated(["account_id", "as_of"]).any()
    assert result.positives == int(expected["churned"].sum())
    counts = result.comparison.set_index(["scorer", "metric"])
    assert (counts["positives"] == result.positives).all() and (counts["rows"] == len(expected)).all()
    auc = result.interval("roc_auc")
    assert auc.low < auc.value < auc.high
    assert result.interval("roc_auc", "model - baseline").low > 0  # the hand-built signal beats the rules


def test_the_shipped_model_is_refit_on_every_labelled_month_with_the_chosen_rounds(churn_result):
    frame, result = churn_result
    model = result.model
    newest_labelled = frame.loc[frame["churned"].notna(), "as_of"].max()
    assert model.training_window["train_end"] == newest_labelled.date().isoformat()
    assert model.training_window["train_end"] > result.folds[-1].fold.window["train_end"]
    assert model.training_window["test_start"] == result.folds[0].fold.window["test_start"]
    assert model.booster.current_iteration() == result.rounds == result.params["rounds"]
    assert model.calibrator.method == "platt"  # a few hundred positives: isotonic would overfit
    assert model.metrics["roc_auc"] == pytest.approx(result.interval("roc_auc").value)
    assert model.metrics["roc_auc_low"] == pytest.approx(result.interval("roc_auc").low)
    proba = model.predict_proba(frame.tail(200))
    assert ((proba > 0) & (proba < 1)).all()


def test_rounds_are_chosen_on_earlier_folds_only(churn_result):
    from tests.training.conftest import CATEGORICAL, NUMERIC

    frame, result = churn_result
    assert result.folds[0].rounds == FIRST_FOLD_ROUNDS
    # Scramble the newest test month's outcomes: its reported predictions must not move,
    # because neither its model nor its round count saw them.
    newest = result.folds[-1].fold.test
    scrambled = frame.copy()
    mask = (scrambled["as_of"] == newest) & scrambled["churned"].notna()
    scrambled.loc[mask, "churned"] = 1.0 - scrambled.loc[mask, "churned"]
    settings = Settings(_env_file=None, home="unused", bootstrap_replicates=50)
    again = train_model("churn", scrambled, NUMERIC + CATEGORICAL, CATEGORICAL, settings, num_boost_round=200)
    before = result.pooled.loc[result.pooled["as_of"] == newest, "model_raw"].to_numpy()
    after = again.pooled.loc[again.pooled["as_of"] == newest, "model_raw"].to_numpy()
    np.testing.assert_array_equal(before, after)
    assert again.folds[-1].rounds == result.folds[-1].rounds


def test_folds_are_reused_from_the_cache_on_a_frame_cut_later(make_frame, feature_lists):
    from training.datasets import cut_at

    features, categorical = feature_lists
    frame = make_frame(accounts=200, months=16)
    settings = Settings(_env_file=None, home="unused", bootstrap_replicates=50)
    cache: dict = {}
    early = cut_at(frame, pd.Timestamp("2024-12-31"), 90, ("expanded", "churned"))
    first = train_model("expansion", early, features, categorical, settings, num_boost_round=50, fold_cache=cache)
    size = len(cache)
    full = train_model("expansion", frame, features, categorical, settings, num_boost_round=50, fold_cache=cache)
    assert len(full.folds) > len(first.folds) and len(cache) == size + len(full.folds) - len(first.folds)
    shared = first.pooled["model_raw"].to_numpy()
    np.testing.assert_array_equal(full.pooled["model_raw"].to_numpy()[: len(shared)], shared)


def test_thirteen_months_train_with_a_warning_and_ten_are_refused(make_frame, feature_lists):
    features, categorical = feature_lists
    settings = Settings(_env_file=None, home="unused", bootstrap_replicates=50)
    short = train_model("expansion", make_frame(months=13), features, categorical, settings, num_boost_round=50)
    assert 3 <= len(short.folds) < 6 and "wide interval" in short.warning
    with pytest.raises(HistoryError, match="add 1 more month"):
        train_model("expansion", make_frame(months=10), features, categorical, settings, num_boost_round=50)


def test_later_folds_train_one_step_past_the_best_so_far_and_choose_as_the_full_grid_would(make_frame, feature_lists):
    from training import train as train_module
    from training.models import round_grid

    features, categorical = feature_lists
    frame = make_frame(accounts=200, months=16)
    settings = Settings(_env_file=None, home="unused", bootstrap_replicates=50)
    capped = train_model("expansion", frame, features, categorical, settings, num_boost_round=300)
    grid = round_grid(300)
    folds = pooled_folds(frame, "expanded", 90)
    full = [train_module.run_fold("expansion", frame, f, features, categorical, grid, 1) for f in folds]
    ys = [frame.loc[(frame["as_of"] == f.test) & frame["expanded"].notna(), "expanded"].to_numpy(float) for f in folds]
    # Same round choices as folds trained to the end of the grid, and the same predictions at them.
    assert capped.rounds == train_module.best_rounds(full, ys, grid)
    for i, fold in enumerate(capped.folds[1:], start=1):
        assert fold.rounds == train_module.best_rounds(full[:i], ys[:i], grid)
    at_chosen = np.concatenate([run.raw[f.rounds] for run, f in zip(full, capped.folds)])
    np.testing.assert_allclose(capped.pooled["model_raw"].to_numpy(), at_chosen)
    cache: dict = {}
    train_model("expansion", frame, features, categorical, settings, num_boost_round=300, fold_cache=cache)
    trained_to = [max(run.raw) for run in cache.values()]
    # The first fold goes to the end of the grid; later ones stop one step past the best of the folds before them.
    assert trained_to[0] == 300 and min(trained_to[1:]) < 300


def test_months_over_the_fit_budget_are_predicted_by_their_blocks_shared_fit(make_frame, feature_lists):
    from training import train as train_module
    from training.models import round_grid

    features, categorical = feature_lists
    frame = make_frame(accounts=200, months=16)
    per_month = pooled_folds(frame, "expanded", 90)
    budget = sum(len(frame[frame["as_of"].isin(f.train) & frame["expanded"].notna()]) for f in per_month) // 2
    settings = Settings(_env_file=None, home="unused", bootstrap_replicates=50, backtest_fit_rows=budget)
    result = train_model("expansion", frame, features, categorical, settings, num_boost_round=100)
    shared = pooled_folds(frame, "expanded", 90, fit_rows=budget)
    assert [f.fold for f in result.folds] == shared and [f.fold.test for f in result.folds] == [f.test for f in per_month]
    assert len({f.train for f in shared}) < len(shared)
    # every month's pooled predictions come from the fit of its block's oldest month, at the rounds it reported
    grid = round_grid(100)
    for fold, reported in zip(shared, result.folds):
        alone = train_module.run_fold("expansion", frame, fold, features, categorical, grid, 1)
        got = result.pooled.loc[result.pooled["as_of"] == fold.test, "model_raw"].to_numpy()
        np.testing.assert_allclose(got, alone.raw[reported.rounds])
    assert result.model.training_window["train_end"] == frame.loc[frame["expanded"].notna(), "as_of"].max().date().isoformat()
