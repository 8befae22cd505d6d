"""The replay of the monthly job at past cut-offs: only data up to each cut-off, outcomes from the full data."""

from __future__ import annotations

import pandas as pd
import pytest

from features.config import Settings
from training.backtest import backtest, choose_cutoffs, eligible_cutoffs, top_decile_mrr_share
from training.datasets import HistoryError


@pytest.fixture(scope="module")
def replay():
    from tests.training.conftest import CATEGORICAL, NUMERIC, make_frame

    frame = make_frame(accounts=300, months=18)
    frame["expansion_mrr"] = frame["expanded"] * 100.0
    frame["mrr"] = frame["arr"] / 12.0
    settings = Settings(_env_file=None, home="unused", bootstrap_replicates=100)
    cutoffs = choose_cutoffs(frame, 90, n_cutoffs=3)
    return frame, cutoffs, backtest(frame, NUMERIC + CATEGORICAL, CATEGORICAL, settings, cutoffs, num_boost_round=50)


def test_each_cutoff_scores_its_own_month_with_outcomes_from_the_full_data(replay):
    frame, cutoffs, result = replay
    assert sorted(result.scores["as_of"].unique()) == cutoffs
    for cutoff in cutoffs:
        month = frame[(frame["as_of"] == cutoff) & frame["expanded"].notna()]
        scored = result.scores[(result.scores["as_of"] == cutoff) & (result.scores["model_name"] == "expansion")]
        assert len(scored) == len(month) and scored["outcome"].sum() == month["expanded"].sum()
    assert set(result.cutoffs["model"]) == {"expansion", "churn"} and len(result.cutoffs) == 2 * len(cutoffs)
    assert set(result.cutoffs["decision"]) <= {"promoted", "rejected"}


def test_the_job_at_a_cutoff_never_sees_outcomes_after_it(replay):
    from tests.training.conftest import CATEGORICAL, NUMERIC

    frame, cutoffs, result = replay
    # Rewrite every outcome after the first cut-off: the first cut-off's scores must not move.
    changed = frame.copy()
    later = changed["as_of"] + pd.Timedelta(days=90) > cutoffs[0]
    changed.loc[later & changed["expanded"].notna(), "expanded"] = 1.0 - changed.loc[later & changed["expanded"].notna(), "expanded"]
    settings = Settings(_env_file=None, home="unused", bootstrap_replicates=100)
    again = backtest(changed, NUMERIC + CATEGORICAL, CATEGORICAL, settings, cutoffs[:1], num_boost_round=50, models=("expansion",))
    before = result.scores[(result.scores["as_of"] == cutoffs[0]) & (result.scores["model_name"] == "expansion")]
    pd.testing.assert_series_equal(before["model"].reset_index(drop=True), again.scores["model"].reset_index(drop=True))


def test_pooled_summary_has_intervals_counts_and_the_mrr_share(replay):
    _, _, result = replay
    s = result.summary.set_index(["model_name", "scorer", "metric"])
    for name in ("expansion", "churn"):
        for scorer in ("model", "baseline", "model - baseline"):
            row = s.loc[(name, scorer, "roc_auc")]
            assert row["low"] <= row["high"] and row["positives"] > 0
    share = s.loc[("expansion", "model", "top_decile_expansion_mrr_share")]
    assert 0 <= share["low"] <= share["value"] <= share["high"] <= 1
    assert s.loc[("expansion", "model", "roc_auc"), "value"] > 0.6
    books = result.books
    assert {"csm_owner", "model_precision", "baseline_precision"} <= set(books.columns)
    assert (books["model_top_accounts"] >= 1).all()


def test_top_decile_share_counts_each_cutoff_separately():
    as_of = pd.to_datetime(["2025-01-31"] * 10 + ["2025-02-28"] * 10).to_numpy()
    mrr = [100.0] + [0.0] * 9 + [0.0] * 9 + [300.0]
    scores = list(range(10, 0, -1)) + list(range(10, 0, -1))  # first cut-off's top holds its MRR, second's does not
    assert top_decile_mrr_share(as_of, pd.Series(mrr).to_numpy(), pd.Series(scores, dtype=float).to_numpy()) == 0.25


def test_cutoffs_without_outcomes_or_history_are_refused(make_frame):
    frame = make_frame(accounts=20, months=18)
    eligible = eligible_cutoffs(frame, 90)
    assert eligible and eligible[-1] == frame.loc[frame["expanded"].notna(), "as_of"].max()
    with pytest.raises(HistoryError, match="no cut-off fits"):
        choose_cutoffs(frame, 90, start=pd.Timestamp("2030-01-31"))
    with pytest.raises(HistoryError, match="eligible month ends: none"):
        choose_cutoffs(make_frame(accounts=20, months=11), 90, n_cutoffs=2)


def test_the_replay_is_logged_as_its_own_run(replay, settings):
    from mlflow import MlflowClient

    from training.registry import log_backtest

    _, cutoffs, result = replay
    run_id = log_backtest(result, settings, {"horizon_days": 90})
    run = MlflowClient(tracking_uri=settings.tracking_uri).get_run(run_id)
    auc = result.summary.query("model_name == 'expansion' and scorer == 'model' and metric == 'roc_auc'").iloc[0]
    assert run.data.metrics["expansion_roc_auc"] == pytest.approx(auc["value"])
    assert run.data.metrics["expansion_gain_roc_auc_low"] < run.data.metrics["expansion_gain_roc_auc_high"]
    assert run.data.params["cutoffs"] == ",".join(c.date().isoformat() for c in cutoffs)


def test_every_interval_of_the_backtest_table_holds_its_point(replay):
    _, _, result = replay
    table = result.summary.dropna(subset=["low", "high"])
    assert len(table) >= 0.9 * len(result.summary)
    outside = table[(table["low"] > table["value"]) | (table["value"] > table["high"])]
    assert outside.empty, outside[["model_name", "scorer", "metric", "value", "low", "high"]].to_string()


def test_the_table_reports_what_served_and_which_months_each_served(replay):
    _, cutoffs, result = replay
    s = result.summary.set_index(["model_name", "scorer", "metric"])
    for scorer in ("served", "served - baseline", "model - served"):
        assert ("expansion", scorer, "roc_auc") in s.index
    # Where the baseline served, the served figures are the baseline's, month by month.
    scores = result.scores[result.scores["model_name"] == "expansion"]
    by_baseline = scores["served_by"] == "baseline"
    assert (scores.loc[by_baseline, "served"] == scores.loc[by_baseline, "baseline"]).all()
    served_by = result.summary.loc[result.summary["model_name"] == "expansion", "served_by"].iloc[0]
    decisions = result.cutoffs[result.cutoffs["model"] == "expansion"]
    for r in decisions.itertuples():
        assert r.cutoff in served_by
    assert ("baseline:" in served_by) == (decisions["served"] == "baseline").any()


def test_the_mrr_share_is_compared_with_a_ranking_by_current_mrr(replay):
    from training.backtest import size_gain

    _, _, result = replay
    s = result.summary.set_index(["model_name", "scorer", "metric"])
    assert ("expansion", "current_mrr", "top_decile_expansion_mrr_share") in s.index
    assert ("expansion", "served - current_mrr", "top_decile_expansion_mrr_share") in s.index
    words = size_gain(result.summary, "expansion")
    size = s.loc[("expansion", "served - current_mrr", "top_decile_expansion_mrr_share")]
    assert ("not a gain over size" in words) == (not size["low"] > 0 or
                                                 not s.loc[("expansion", "served - baseline", "top_decile_expansion_mrr_share"), "low"] > 0)


def test_a_size_ranking_holding_the_mrr_is_not_called_a_gain():
    from training.backtest import size_gain

    rows = []
    for scorer, value, low in (("served", 0.6, 0.5), ("served - baseline", 0.3, 0.2), ("current_mrr", 0.7, 0.6),
                               ("served - current_mrr", -0.1, -0.2)):
        rows.append({"model_name": "expansion", "scorer": scorer, "metric": "top_decile_expansion_mrr_share",
                     "value": value, "low": low, "high": value + 0.1})
    words = size_gain(pd.DataFrame(rows), "expansion")
    assert "ranking by current MRR alone holds 70%" in words and "not a gain over size" in words


def test_the_shadow_record_holds_only_its_own_months_whose_outcome_the_job_could_know():
    from training.backtest import shadow_record

    def month(day: str, version: str) -> pd.DataFrame:
        return pd.DataFrame({"account_id": ["a", "b"], "as_of": pd.Timestamp(day), "outcome": [1.0, 0.0],
                             "shadow": [0.9, 0.1], "served": [0.5, 0.5], "baseline": [0.4, 0.6], "shadow_by": version})

    scored = [month("2025-01-31", "v1"), month("2025-02-28", "v1"), month("2025-03-31", "v2"), month("2025-04-30", "v1")]
    record = shadow_record(scored, "v1", pd.Timestamp("2025-05-31"), 90)
    # 2025-02-28 + 90 days = 2025-05-29 <= the cut-off; 2025-04-30's outcome is not known yet; 2025-03-31 was v2's
    assert sorted(record.rows["as_of"].dt.date.astype(str).unique()) == ["2025-01-31", "2025-02-28"]
    assert record.version == "v1" and list(record.rows.columns) == ["account_id", "as_of", "outcome", "shadow", "served",
                                                                    "baseline"]
    assert shadow_record(scored, "v9", pd.Timestamp("2025-05-31"), 90).rows.empty


def test_the_replay_keeps_a_shadow_beside_what_serves(replay):
    _, _, result = replay
    d = result.cutoffs
    assert {"evidence", "shadow", "shadow_realised_positives"} <= set(d.columns)
    scores = result.scores
    shadowed = scores[scores["shadow_by"] != ""]
    assert shadowed["shadow"].notna().all() and scores.loc[scores["shadow_by"] == "", "shadow"].isna().all()
    for r in d.itertuples():  # a version is never scored as shadow at a month it serves
        assert r.shadow == "" or r.shadow != r.served
