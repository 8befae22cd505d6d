"""The batch job end to end: data folder -> features -> Scorer -> CRM sink, in chunks, all or nothing."""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from typer.testing import CliRunner

from features.config import Settings
from features.io import open_data
from serving.scoring.batch import score_snapshot, snapshot_features
from serving.scoring.scorer import Scorer, feature_specs
from serving.sinks import open_sink

TINY_AS_OF = dt.date(2025, 3, 31)
SCORED_AT = dt.datetime(2025, 4, 1, 6, tzinfo=dt.UTC)


class FailingScorer:
    """The real scorer, failing on one chunk: a crash in the middle of a run."""

    def __init__(self, scorer: Scorer, fail_at: int) -> None:
        self.scorer, self.fail_at, self.calls = scorer, fail_at, 0

    def with_reference(self, frame: pd.DataFrame) -> FailingScorer:
        self.scorer = self.scorer.with_reference(frame)
        return self

    def with_previous(self, previous: pd.DataFrame | None) -> FailingScorer:
        self.scorer = self.scorer.with_previous(previous)
        return self

    def score(self, frame: pd.DataFrame, with_reasons: bool = True) -> pd.DataFrame:
        self.calls += 1
        if self.calls == self.fail_at:
            raise RuntimeError(f"scorer failed on chunk {self.calls}")
        return self.scorer.score(frame, with_reasons=with_reasons)


@pytest.fixture
def tiny_features(tiny_company: Callable[..., Path]) -> pd.DataFrame:
    source = open_data(tiny_company())
    try:
        return snapshot_features(source, TINY_AS_OF, Settings(_env_file=None))
    finally:
        source.close()


def test_baseline_only_run_writes_every_active_account(tiny_features: pd.DataFrame, sql_sink_uri) -> None:  # noqa: ANN001
    uri, prefix = sql_sink_uri
    sink = open_sink(uri, Settings(_env_file=None), table_prefix=prefix)
    try:
        summary = score_snapshot(tiny_features, Scorer(specs=feature_specs()), sink, TINY_AS_OF, SCORED_AT, chunk_size=1)
        current = sink.read_table("current")
    finally:
        sink.close()
    expected = Scorer(specs=feature_specs()).with_reference(tiny_features).score(tiny_features)
    assert sorted(current["account_id"]) == sorted(tiny_features["account_id"].astype(str))
    assert summary.accounts == len(tiny_features) and summary.new_accounts == len(tiny_features)
    merged = current.merge(expected, on="account_id", suffixes=("", "_expected"))
    pd.testing.assert_series_equal(merged["readiness_score"], merged["readiness_score_expected"], check_names=False)
    assert current["expansion_probability"].isna().all() and current["expansion_model_version"].isna().all()
    assert sum(summary.readiness_bands.values()) == len(tiny_features)


def test_chunked_scores_equal_one_piece(tiny_features: pd.DataFrame, tmp_path: Path) -> None:
    sink_one = open_sink(f"parquet:{tmp_path / 'one.parquet'}", Settings(_env_file=None))
    sink_many = open_sink(f"parquet:{tmp_path / 'many.parquet'}", Settings(_env_file=None))
    score_snapshot(tiny_features, Scorer(specs=feature_specs()), sink_one, TINY_AS_OF, SCORED_AT, chunk_size=100)
    score_snapshot(tiny_features, Scorer(specs=feature_specs()), sink_many, TINY_AS_OF, SCORED_AT, chunk_size=1)
    pd.testing.assert_frame_equal(pd.read_parquet(tmp_path / "one.parquet"), pd.read_parquet(tmp_path / "many.parquet"))


def test_run_failing_on_third_chunk_keeps_previous_scores(tiny_features: pd.DataFrame, sql_sink_uri) -> None:  # noqa: ANN001
    uri, prefix = sql_sink_uri
    sink = open_sink(uri, Settings(_env_file=None), table_prefix=prefix)
    try:
        score_snapshot(tiny_features, Scorer(specs=feature_specs()), sink, TINY_AS_OF, SCORED_AT, chunk_size=1)
        before = sink.read_table("current"), sink.read_table("history")
        failing = FailingScorer(Scorer(specs=feature_specs()), fail_at=3)
        later = SCORED_AT + dt.timedelta(days=1)
        with pytest.raises(RuntimeError, match="chunk 3"):
            score_snapshot(tiny_features, failing, sink, TINY_AS_OF + dt.timedelta(days=1), later, chunk_size=1)
        pd.testing.assert_frame_equal(sink.read_table("current"), before[0])
        pd.testing.assert_frame_equal(sink.read_table("history"), before[1])
    finally:
        sink.close()


def test_summary_reports_movers_against_the_previous_run(tiny_features: pd.DataFrame, tmp_path: Path) -> None:
    sink = open_sink(f"csv:{tmp_path / 'scores.csv'}", Settings(_env_file=None))
    score_snapshot(tiny_features, Scorer(specs=feature_specs()), sink, TINY_AS_OF, SCORED_AT)
    previous = pd.read_csv(tmp_path / "scores.csv", dtype={"account_id": str}).set_index("account_id")
    changed = tiny_features.copy()
    changed["whitespace_usd"] = changed["whitespace_usd"].fillna(0) * 10 + 50_000  # more headroom
    summary = score_snapshot(changed, Scorer(specs=feature_specs()), sink, TINY_AS_OF, SCORED_AT)
    now = pd.read_csv(tmp_path / "scores.csv", dtype={"account_id": str}).set_index("account_id")
    moved = (now["readiness_score"] - previous.loc[now.index, "readiness_score"]).abs() > 0
    movers = summary.top_movers.set_index("account_id")
    assert summary.new_accounts == 0 and summary.dropped_accounts == 0
    assert 0 < len(movers) == min(int(moved.sum()), 10)
    assert set(movers.index) <= set(moved[moved].index)
    for account, row in movers.iterrows():
        assert row["previous_score"] == pytest.approx(previous.loc[account, "readiness_score"])
        assert row["change"] == pytest.approx(row["readiness_score"] - row["previous_score"])
    assert list(movers["change"].abs()) == sorted(movers["change"].abs(), reverse=True)


def test_an_identical_rerun_has_no_movers(tiny_features: pd.DataFrame, tmp_path: Path) -> None:
    sink = open_sink(f"csv:{tmp_path / 'scores.csv'}", Settings(_env_file=None))
    score_snapshot(tiny_features, Scorer(specs=feature_specs()), sink, TINY_AS_OF, SCORED_AT)
    summary = score_snapshot(tiny_features, Scorer(specs=feature_specs()), sink, TINY_AS_OF, SCORED_AT)
    assert summary.new_accounts == 0 and summary.top_movers.empty


def test_score_command_writes_the_sink(tiny_company: Callable[..., Path], tmp_path: Path) -> None:
    from serving.cli import app

    def float_months(tables: dict[str, pd.DataFrame]) -> None:  # breaks the contract: an int column as float
        accounts = tables["accounts"]
        accounts["fiscal_year_start_month"] = accounts["fiscal_year_start_month"].astype("float64")

    out = tmp_path / "sf.csv"
    result = CliRunner().invoke(
        app,
        ["score", "--data", str(tiny_company()), "--as-of", str(TINY_AS_OF), "--models", "none",
         "--sink", f"salesforce:{out}", "--chunk-size", "2"],
        env={"EXPANSION_HOME": str(tmp_path / "home"), "MLFLOW_DISABLE_TELEMETRY": "true"},
    )
    assert result.exit_code == 0, result.output
    assert "scored" in result.output
    rows = pd.read_csv(out, dtype=str, keep_default_na=False)
    assert len(rows) > 0 and (rows["Expansion_Snapshot_Date__c"] == str(TINY_AS_OF)).all()
    bad = CliRunner().invoke(app, ["score", "--data", str(tiny_company()), "--sink", "ftp://x", "--as-of", "2025-03-31"])
    assert bad.exit_code == 2 and "unknown scheme" in bad.output
    invalid = CliRunner().invoke(app, ["score", "--data", str(tiny_company(float_months)), "--sink", f"csv:{tmp_path / 'x.csv'}"],
                                 env={"EXPANSION_HOME": str(tmp_path / "home")})
    assert invalid.exit_code == 2 and "accounts.fiscal_year_start_month" in invalid.output  # checked before scoring
    assert "as of 2025-07-31 (the data end" in invalid.output and not (tmp_path / "x.csv").exists()


@pytest.mark.slow
def test_trained_models_score_the_generated_company(feature_frame: pd.DataFrame, tmp_path: Path) -> None:
    from features.registry import categorical_features, feature_names
    from training.train import train_all

    settings = Settings(_env_file=None, home=tmp_path)
    results = train_all(feature_frame, feature_names(), categorical_features(), settings, num_boost_round=30)
    scorer = Scorer(results["expansion"].model, results["churn"].model, feature_specs())
    as_of = pd.Timestamp(feature_frame["as_of"].max()).date()
    snapshot = feature_frame[feature_frame["as_of"] == pd.Timestamp(as_of)].reset_index(drop=True)
    sink = open_sink(settings.crm_uri, settings)
    try:
        summary = score_snapshot(snapshot, scorer, sink, as_of, SCORED_AT, chunk_size=150)
        current = sink.read_table("current")
    finally:
        sink.close()
    assert summary.accounts == len(snapshot) == len(current)
    assert current["expansion_probability"].between(0, 1).all() and current["churn_probability"].between(0, 1).all()
    assert current["reason_1"].notna().mean() > 0.5  # model reasons are shown where the scorer gives them


def test_crm_rows_say_what_changed_since_the_previous_snapshot_and_a_rerun_changes_nothing(
        tiny_features: pd.DataFrame, tmp_path: Path) -> None:
    import sqlalchemy as sa

    sink = open_sink(f"sqlite:///{tmp_path / 'crm.db'}", Settings(_env_file=None))
    try:
        score_snapshot(tiny_features, Scorer(specs=feature_specs()), sink, TINY_AS_OF, SCORED_AT)
        first = sink.read_table("current").set_index("account_id")
        assert first["readiness_change"].isna().all() and first["change_reason"].isna().all()  # no run before
        changed = tiny_features.copy()
        changed["whitespace_usd"] = changed["whitespace_usd"].fillna(0) * 10 + 50_000
        later_as_of, later = TINY_AS_OF + dt.timedelta(days=30), SCORED_AT + dt.timedelta(days=30)
        summary = score_snapshot(changed, Scorer(specs=feature_specs()), sink, later_as_of, later)
        now = sink.read_table("current").set_index("account_id")
        expected = now["readiness_score"] - first.loc[now.index, "readiness_score"]
        assert np.allclose(now["readiness_change"], expected) and (expected != 0).any()
        moved = now[now["readiness_change"] != 0]
        assert moved["change_reason"].str.match(r"Readiness ([+-]\d+ points|unchanged) since the last run").all()
        assert summary.top_movers["change"].abs().max() == pytest.approx(now["readiness_change"].abs().max())
        # a re-run of the same snapshot compares with the same previous run: identical rows
        score_snapshot(changed, Scorer(specs=feature_specs()), sink, later_as_of, later)
        pd.testing.assert_frame_equal(sink.read_table("current"), now.reset_index())
        with sink.engine.connect() as conn:
            runs = conn.execute(sa.text("SELECT COUNT(DISTINCT run_id) FROM account_score_history")).scalar()
        assert runs == 2
    finally:
        sink.close()
