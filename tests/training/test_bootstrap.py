"""Account-level bootstrap: whole accounts are resampled, intervals cover the truth, paired gains see through shared noise."""

from __future__ import annotations

import numpy as np
import pytest

from training.bootstrap import Scores, cluster_resamples, compare, lookup


def test_resamples_keep_every_row_of_a_drawn_account_together():
    accounts = np.array(["a", "b", "a", "c", "b", "a"])
    for idx in cluster_resamples(accounts, replicates=50, seed=3):
        drawn = accounts[idx]
        for acc in set(drawn):
            copies = (drawn == acc).sum()
            assert copies % (accounts == acc).sum() == 0  # an account comes with all its rows, k times
        assert len(set(idx[drawn == "a"].tolist())) in (0, 3)


def _company(rng, accounts=300, months=6, signal=1.0):
    acc = np.repeat(np.arange(accounts), months)
    trait = np.repeat(rng.normal(size=accounts), months)  # account-level signal shared across its months
    y = (rng.random(len(acc)) < 1 / (1 + np.exp(-(-2.0 + signal * trait)))).astype(float)
    return acc, trait, y


def test_interval_contains_the_point_and_clustered_is_wider_than_rows(monkeypatch):
    rng = np.random.default_rng(0)
    acc, trait, _ = _company(rng)
    # As with 90-day outcomes seen at monthly snapshots: an account's outcome and score repeat over its months.
    y = np.repeat((rng.random(300) < 1 / (1 + np.exp(-(-1.5 + trait[::6])))).astype(float), 6)
    score = trait + np.repeat(rng.normal(scale=0.5, size=300), 6)
    books = np.zeros(len(y), dtype=int)
    table = compare(y, {"model": Scores(score, score)}, acc, books, names=("roc_auc",), replicates=300)
    clustered = lookup(table, "model", "roc_auc")
    assert clustered.low < clustered.value < clustered.high
    rows_only = lookup(compare(y, {"model": Scores(score, score)}, np.arange(len(y)), books, names=("roc_auc",),
                               replicates=300), "model", "roc_auc")
    # Rows of one account move together: treating them as independent understates the uncertainty.
    assert clustered.high - clustered.low > 1.5 * (rows_only.high - rows_only.low)
    assert table["positives"].iloc[0] == y.sum() and table["rows"].iloc[0] == len(y)


def test_paired_gain_is_significant_for_a_better_scorer_and_not_for_a_copy_with_noise():
    rng = np.random.default_rng(1)
    acc, trait, y = _company(rng)
    good = trait + rng.normal(scale=0.3, size=len(y))
    weak = trait + rng.normal(scale=2.0, size=len(y))
    twin = good + rng.normal(scale=0.01, size=len(y))
    books = np.zeros(len(y), dtype=int)
    table = compare(y, {"good": Scores(good, good), "weak": Scores(weak, weak), "twin": Scores(twin, twin)},
                    acc, books, names=("roc_auc",), replicates=300)
    assert lookup(table, "good - weak", "roc_auc").low > 0
    twin_gain = lookup(table, "good - twin", "roc_auc")
    assert twin_gain.low < 0 < twin_gain.high


def test_unknown_metric_lookup_is_named():
    rng = np.random.default_rng(2)
    acc, trait, y = _company(rng, accounts=20)
    table = compare(y, {"m": Scores(trait, trait)}, acc, np.zeros(len(y), dtype=int), names=("roc_auc",), replicates=50)
    with pytest.raises(KeyError, match="'pr_auc'"):
        lookup(table, "m", "pr_auc")


def test_every_interval_holds_its_point_even_for_metrics_biased_under_resampling():
    from training.bootstrap import interval
    from training.evaluate import HEADLINE

    rng = np.random.default_rng(5)
    # Few rows, calibrated probabilities: ECE's point is small and every resample's ECE is larger.
    acc, trait, y = _company(rng, accounts=60, months=3)
    p = 1 / (1 + np.exp(-(-2.0 + trait)))
    books = np.tile(np.arange(6), len(y) // 6)
    table = compare(y, {"model": Scores(trait, p), "noise": Scores(rng.random(len(y)), rng.random(len(y)))},
                    acc, books, names=HEADLINE, replicates=200, decision_confidence=0.98)
    finite = table.dropna(subset=["low", "high"])
    assert len(finite) == len(table)
    assert ((finite["low"] <= finite["value"]) & (finite["value"] <= finite["high"])).all()
    assert ((finite["decision_low"] <= finite["value"]) & (finite["value"] <= finite["decision_high"])).all()
    # The plain percentile interval of ECE misses its point here; the re-centred one keeps it and its width.
    draws = np.array([compare(y[idx], {"m": Scores(trait[idx], p[idx])}, acc[idx], books[idx], names=("ece",),
                              replicates=1)["value"].iloc[0] for idx in cluster_resamples(acc, 200, seed=9)])
    point = float(table[(table["scorer"] == "model") & (table["metric"] == "ece")]["value"].iloc[0])
    assert np.percentile(draws, 5) > point  # the bias the re-centring removes
    iv = interval(point, draws)
    assert iv.low <= point <= iv.high and iv.low >= 0
    assert iv.high - iv.low == pytest.approx(np.percentile(draws, 95) - np.percentile(draws, 5), abs=0.02)
