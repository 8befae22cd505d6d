"""The promotion gate: its refusals on small samples and on noise, in plain words, and the champion comparison."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from features.config import Settings
from training.bootstrap import Interval
from training.gate import ChampionComparison, compare_champion, decide, gate
from training.train import train_model

GOOD_AUC, GOOD_GAIN = Interval(0.74, 0.69, 0.79), Interval(0.12, 0.07, 0.17)


def test_too_few_positives_is_refused_whatever_the_figures():
    decision = decide("expansion", 23, GOOD_AUC, GOOD_GAIN, None, min_positives=30)
    assert not decision.promote
    assert decision.reasons == ["23 expansions in the test months; 30 are needed"]
    assert decision.figures["gate_positives"] == "23"


def test_an_auc_interval_reaching_chance_is_refused():
    decision = decide("churn", 80, Interval(0.56, 0.49, 0.63), GOOD_GAIN, None, min_positives=30)
    assert not decision.promote and "not clearly better than chance" in decision.reasons[0]


def test_a_gain_over_the_baseline_that_noise_could_produce_is_refused():
    decision = decide("expansion", 80, GOOD_AUC, Interval(0.03, -0.01, 0.07), None, min_positives=30)
    assert not decision.promote
    assert "could be noise" in decision.reasons[0] and "-0.010" in decision.reasons[0]
    assert not decide("expansion", 80, GOOD_AUC, GOOD_GAIN, None, min_positives=30, margin=0.08).promote


def test_a_gain_interval_wholly_below_zero_is_called_worse_not_noise():
    decision = decide("expansion", 80, GOOD_AUC, Interval(-0.08, -0.12, -0.03), None, min_positives=30)
    assert not decision.promote
    assert "worse than the rule-based baseline" in decision.reasons[0] and "could be noise" not in decision.reasons[0]
    versus = decide("expansion", 80, GOOD_AUC, GOOD_GAIN,
                    ChampionComparison("3", 60, "2025-10-31", gain=Interval(-0.05, -0.09, -0.01)), min_positives=30)
    assert not versus.promote and "worse than champion v3" in versus.reasons[-1]


def test_a_clear_gain_with_no_champion_is_promoted():
    decision = decide("expansion", 80, GOOD_AUC, GOOD_GAIN, None, min_positives=30)
    assert decision.promote and decision.reasons[-1] == "no champion yet"
    assert decision.figures["gate_roc_auc"] == "0.740 (90% interval 0.690 to 0.790)"


@pytest.mark.parametrize("champion, promote, words", [
    (ChampionComparison("3", 12, "2025-10-31"), False, "12 expansions in the test months from the end of champion v3's data"),
    (ChampionComparison("3", 60, "2025-10-31", gain=Interval(0.02, -0.01, 0.05)), False, "could be noise: it keeps serving"),
    (ChampionComparison("3", 60, "2025-10-31", gain=Interval(0.06, 0.02, 0.10)), True, "beats champion v3"),
    (ChampionComparison("3", 60, "2025-10-31", problem="missing feature x"), False, "cannot be compared (missing feature x)"),
])
def test_the_champion_keeps_serving_unless_beaten_on_enough_unseen_rows(champion, promote, words):
    decision = decide("expansion", 80, GOOD_AUC, GOOD_GAIN, champion, min_positives=30)
    assert decision.promote is promote and words in decision.reasons[-1]


def test_a_model_without_signal_is_not_promoted(make_frame, feature_lists):
    features, categorical = feature_lists
    frame = make_frame(accounts=300)
    rng = np.random.default_rng(5)
    for _, idx in frame[frame["expanded"].notna()].groupby("as_of").groups.items():  # outcomes shuffled within each month
        frame.loc[idx, "expanded"] = rng.permutation(frame.loc[idx, "expanded"].to_numpy())
    settings = Settings(_env_file=None, home="unused", bootstrap_replicates=300)
    result = train_model("expansion", frame, features, categorical, settings, num_boost_round=100)
    decision = gate(result, None, settings)
    assert not decision.promote, decision.reasons
    assert result.positives >= 30 and abs(result.interval("roc_auc").value - 0.5) < 0.05


def test_a_small_book_is_refused_for_its_count(make_frame, feature_lists):
    features, categorical = feature_lists
    settings = Settings(_env_file=None, home="unused", bootstrap_replicates=100)
    result = train_model("expansion", make_frame(accounts=40), features, categorical, settings, num_boost_round=50)
    assert result.positives < 30
    decision = gate(result, None, settings)
    assert not decision.promote
    assert decision.reasons[0] == f"{result.positives} expansions in the test months; 30 are needed"
    assert decision.reasons[-1] == "evidence: the pooled backtest"


def test_the_champion_is_rescored_only_on_rows_from_the_end_of_its_data(make_frame, feature_lists):
    from training.datasets import cut_at

    features, categorical = feature_lists
    frame = make_frame(accounts=400, months=20)
    settings = Settings(_env_file=None, home="unused", bootstrap_replicates=100, gate_min_positives=10)
    old = train_model("churn", cut_at(frame, pd.Timestamp("2024-12-31"), 90, ("expanded", "churned")),
                      features, categorical, settings, num_boost_round=50)
    assert old.model.training_window["data_end"] == "2024-12-31"
    new = train_model("churn", frame, features, categorical, settings, num_boost_round=50)
    comparison = compare_champion(new, old.model, settings)
    unseen = new.pooled[new.pooled["as_of"] >= pd.Timestamp("2024-12-31")]
    assert comparison.since == "2024-12-31" and comparison.positives == int(unseen["churned"].sum())
    assert comparison.gain is not None and comparison.gain.low < comparison.gain.value < comparison.gain.high


def test_the_gate_decides_on_the_wider_interval_of_promotion_confidence(make_frame, feature_lists):
    features, categorical = feature_lists
    settings = Settings(_env_file=None, home="unused", bootstrap_replicates=400)
    result = train_model("churn", make_frame(accounts=300), features, categorical, settings, num_boost_round=50)
    reported, decided = result.interval("roc_auc", "model - baseline"), result.interval("roc_auc", "model - baseline", True)
    assert reported.level == 0.90 and decided.level == settings.promotion_confidence == 0.98
    assert decided.value == reported.value and decided.low < reported.low < reported.high < decided.high
    decision = gate(result, None, settings)
    assert decision.figures["gate_gain_over_baseline"].startswith(f"{decided.value:+.3f} (98% interval {decided.low:+.3f}")


def _shadow_rows(rng, accounts=400, months=3, signal=1.5):
    rows = []
    for m in range(months):
        trait = rng.normal(size=accounts)
        y = (rng.random(accounts) < 1 / (1 + np.exp(-(-1.8 + signal * trait)))).astype(float)
        rows.append(pd.DataFrame({"account_id": [f"a{i}" for i in range(accounts)],
                                  "as_of": pd.Timestamp("2025-01-31") + pd.offsets.MonthEnd(m), "outcome": y,
                                  "shadow": trait + rng.normal(scale=0.3, size=accounts),
                                  "served": rng.normal(size=accounts), "baseline": rng.normal(size=accounts)}))
    return pd.concat(rows, ignore_index=True)


@pytest.fixture(scope="module")
def noise_result():
    from tests.training.conftest import CATEGORICAL, NUMERIC, make_frame

    frame = make_frame(accounts=300)
    rng = np.random.default_rng(5)
    for _, idx in frame[frame["expanded"].notna()].groupby("as_of").groups.items():
        frame.loc[idx, "expanded"] = rng.permutation(frame.loc[idx, "expanded"].to_numpy())
    settings = Settings(_env_file=None, home="unused", bootstrap_replicates=200)
    return train_model("expansion", frame, NUMERIC + CATEGORICAL, CATEGORICAL, settings, num_boost_round=50), settings


def test_a_shadow_that_beat_what_served_counts_in_one_test_at_the_gates_level_and_the_text_says_so(noise_result):
    from training.gate import ShadowRecord

    result, settings = noise_result
    record = ShadowRecord("7", _shadow_rows(np.random.default_rng(1)))
    decision = gate(result, None, settings, shadow=record)
    assert decision.promote and decision.evidence == "pooled backtest + shadow months"
    months = result.pooled["as_of"].nunique()
    assert decision.reasons[0] == (f"evidence: the pooled backtest's {months} test month(s) ({result.positives} expansions) "
                                   f"and shadow v7's 3 realised month(s) ({record.positives} expansions), stacked into one "
                                   "test at 98%")
    assert "98% interval" in decision.figures["gate_gain_over_baseline"]  # one test at the gate's level, no split
    assert "90% interval" in decision.figures["gate_shadow_gain_over_served"]  # each source's own reading, as reported
    assert decision.figures["gate_positives"] == str(result.positives + record.positives)


def test_a_shadow_without_signal_promotes_nothing_and_one_without_positives_leaves_the_pooled_backtest_alone(noise_result):
    from training.gate import ShadowRecord

    result, settings = noise_result
    rows = _shadow_rows(np.random.default_rng(2), signal=0.0)
    rows["shadow"] = np.random.default_rng(3).normal(size=len(rows))
    decision = gate(result, None, settings, shadow=ShadowRecord("7", rows))
    assert not decision.promote and decision.evidence == "pooled backtest + shadow months"
    assert "could be noise" in " ".join(decision.reasons)
    none_yet = gate(result, None, settings, shadow=ShadowRecord("7", rows.assign(outcome=0.0)))
    assert none_yet.reasons[-1] == "evidence: the pooled backtest (shadow v7 has no realised positive yet)"
    plain = gate(result, None, settings)
    assert none_yet.figures["gate_gain_over_baseline"] == plain.figures["gate_gain_over_baseline"]
