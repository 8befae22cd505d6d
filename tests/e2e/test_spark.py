"""Spark local mode runs the same feature definitions and the same Scorer as DuckDB and the in-process job.

One Spark session serves the whole module and is stopped afterwards. Floats are
compared with a tolerance of 1e-6: Spark reads a float literal in SQL as a DECIMAL, so
a day count divided by 30.4375 keeps ~7 significant digits there (a 5e-8 month
difference), and timestamp differences in hours differ by well under a millisecond.
"""

from __future__ import annotations

import datetime as dt
import os
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from features.build import build_features, to_frame
from features.config import Settings
from features.io import open_data
from features.portable import spark_session_of

# make test installs it; in CI a missing engine is a failure, not a skip
if os.environ.get("CI"):
    import pyspark  # noqa: F401
else:
    pytest.importorskip("pyspark")
pytestmark = [pytest.mark.spark, pytest.mark.slow]

SNAPSHOTS = [dt.date(2025, 12, 31), dt.date(2026, 3, 31)]
SCORED_AS_OF = dt.date(2026, 3, 31)
SCORED_AT = dt.datetime(2026, 4, 1, 6, tzinfo=dt.UTC)
TOLERANCE = {"check_exact": False, "rtol": 1e-6, "atol": 1e-6}


@pytest.fixture(scope="module")
def settings(tmp_path_factory: pytest.TempPathFactory) -> Settings:
    return Settings(_env_file=None, spark_master="local[2]", home=tmp_path_factory.mktemp("spark-home"))


@pytest.fixture(scope="module")
def spark_engine(generated_company: Path, settings: Settings) -> Iterator[object]:
    from features.engines import open_engine

    engine = open_engine("spark", settings, data=generated_company)
    yield engine
    spark_session_of(engine.backend).stop()


@pytest.fixture(scope="module")
def spark_features_path(spark_engine, settings: Settings, tmp_path_factory: pytest.TempPathFactory) -> Path:  # noqa: ANN001
    """The Spark feature frame of the snapshots, written as Parquet partitioned by as_of."""
    from features.engines import spark_feature_frame, write_partitioned

    out = tmp_path_factory.mktemp("spark") / "features"
    frame, release = spark_feature_frame(spark_engine, SNAPSHOTS, settings)
    try:
        write_partitioned(frame, str(out))
    finally:
        release()
    return out


@pytest.fixture(scope="module")
def duckdb_features(generated_company: Path, settings: Settings) -> pd.DataFrame:
    source = open_data(generated_company)
    try:
        return build_features(source, SNAPSHOTS, settings)
    finally:
        source.close()


def _read_features(path: Path, columns: list[str]) -> pd.DataFrame:
    return to_frame(pd.read_parquet(path)[columns])


def test_spark_feature_frame_equals_duckdb(spark_features_path: Path, duckdb_features: pd.DataFrame) -> None:
    partitions = sorted(p.name for p in spark_features_path.iterdir() if p.is_dir())
    assert partitions == [f"as_of={d.isoformat()}" for d in SNAPSHOTS]
    spark = _read_features(spark_features_path, list(duckdb_features.columns))
    # the partition value comes back as text (YYYY-MM-DD), parsed at second resolution
    spark["as_of"] = spark["as_of"].astype(duckdb_features["as_of"].dtype)
    assert len(spark) == len(duckdb_features) > 100
    pd.testing.assert_frame_equal(spark, duckdb_features, **TOLERANCE)


def test_missing_contract_column_is_named(tmp_path: Path, spark_engine, settings: Settings) -> None:  # noqa: ANN001
    from features.engines import spark_feature_frame, spark_tables
    from features.io import DataError

    folder = tmp_path / "broken"
    folder.mkdir()
    for name in ("accounts", "subscriptions", "usage_daily"):
        frame = pd.read_parquet(Path(spark_engine.location) / f"{name}.parquet")
        if name == "usage_daily":
            frame = frame.drop(columns=["active_users"])
        frame.to_parquet(folder / f"{name}.parquet", index=False)
    broken = spark_tables(spark_session_of(spark_engine.backend), data=str(folder))
    with pytest.raises(DataError, match=r"usage_daily\.active_users"):
        spark_feature_frame(broken, SNAPSHOTS, settings)


@pytest.fixture(scope="module")
def scorer(generated_company: Path, settings: Settings):  # noqa: ANN201
    """A scorer with expansion and churn models trained on the company's earlier snapshots."""
    from features.registry import categorical_features, feature_names
    from features.spine import month_ends
    from serving.scoring.scorer import Scorer, feature_specs
    from training.models import fit_model

    source = open_data(generated_company)
    try:
        frame = build_features(source, month_ends(dt.date(2025, 1, 1), dt.date(2025, 12, 31)), settings)
    finally:
        source.close()
    labelled = frame[frame["expanded"].notna()]
    cut = pd.Timestamp("2025-08-31")
    train, valid = labelled[labelled["as_of"] < cut], labelled[labelled["as_of"] >= cut]
    models = [
        fit_model(name, train, valid, label, feature_names(), categorical_features(), num_boost_round=40)
        for name, label in (("expansion", "expanded"), ("churn", "churned"))
    ]
    return Scorer(models[0], models[1], feature_specs())


def test_spark_batch_scores_equal_in_process_scores(spark_engine, spark_features_path: Path, scorer, tmp_path: Path) -> None:  # noqa: ANN001
    from serving.sinks import open_sink
    from serving.scoring.spark_batch import score_snapshot_spark

    session = spark_session_of(spark_engine.backend)
    settings = Settings(_env_file=None)
    sink = open_sink(f"sqlite:///{tmp_path / 'crm.db'}", settings)
    out = tmp_path / "scores"
    try:
        summary = score_snapshot_spark(
            session.read.parquet(str(spark_features_path)), scorer, session, SCORED_AS_OF, SCORED_AT,
            sink=sink, parquet_path=str(out), chunk_size=97,
        )
        crm = sink.read_table("current")
    finally:
        sink.close()

    features = pd.read_parquet(spark_features_path)
    features = features[pd.to_datetime(features["as_of"]) == pd.Timestamp(SCORED_AS_OF)].reset_index(drop=True)
    expected = scorer.with_reference(features).score(features).sort_values("account_id", ignore_index=True)
    got = pd.read_parquet(out).sort_values("account_id", ignore_index=True)

    assert (out / f"as_of={SCORED_AS_OF.isoformat()}").is_dir()
    assert got["account_id"].tolist() == expected["account_id"].tolist()
    for column in ("expansion_probability", "churn_probability", "readiness_score", "baseline_score",
                   "whitespace_usd", "expected_expansion_usd"):
        np.testing.assert_allclose(got[column].to_numpy(float), expected[column].to_numpy(float), rtol=1e-9, atol=1e-12,
                                   err_msg=column)
    for column in ("readiness_band", "health", "recommended_play", "baseline_band", "baseline_health", "context",
                   "recommended_play_text", "concept_contributions"):
        assert got[column].astype(object).tolist() == expected[column].astype(object).tolist(), column
    assert [list(r) for r in got["reasons"]] == [list(r) for r in expected["reasons"]]
    # context is never a reason, so an account without a distinct driver has none
    assert expected["reasons"].map(len).gt(0).mean() > 0.95

    assert summary is not None and summary.accounts == len(expected)
    crm = crm.sort_values("account_id", ignore_index=True)
    assert crm["account_id"].tolist() == expected["account_id"].tolist()
    np.testing.assert_allclose(crm["readiness_score"].to_numpy(float), expected["readiness_score"].to_numpy(float))
    first = crm["reason_1"].astype(object).where(crm["reason_1"].notna(), None).tolist()
    assert first == [r[0] if len(r) else None for r in expected["reasons"]]


def test_lake_uri_features_train_and_score(generated_company: Path, spark_engine, tmp_path: Path,  # noqa: ANN001
                                           monkeypatch: pytest.MonkeyPatch) -> None:
    """features -> train -> score on a file:// lake URI, through the commands, the URIs kept as URIs throughout."""
    import sqlalchemy as sa
    from typer.testing import CliRunner

    from serving.cli import app

    monkeypatch.setenv("EXPANSION_HOME", str(tmp_path / "home"))
    monkeypatch.setenv("MLFLOW_TRACKING_URI", f"sqlite:///{tmp_path / 'mlflow.db'}")
    monkeypatch.setenv("EXPANSION_SPARK_MASTER", "local[2]")
    lake = f"file://{tmp_path / 'lake'}"
    runner = CliRunner()

    def run(*args: str) -> str:
        result = runner.invoke(app, list(args))
        assert result.exit_code == 0, f"expansion {' '.join(args)}: exit {result.exit_code}\n{result.output[-3000:]}"
        return " ".join(result.output.split())  # as one line: the console wraps long paths

    said = run("features", "--engine", "spark", "--data", f"file://{generated_company}", "--out", f"{lake}/features",
               "--from", "2025-03-31", "--to", "2026-06-30")
    assert f"to {lake}/features" in said
    partitions = sorted(p.name for p in (tmp_path / "lake" / "features").iterdir() if p.is_dir())
    assert partitions[0] == "as_of=2025-03-31" and partitions[-1] == "as_of=2026-06-30" and len(partitions) == 16
    said = run("train", "--features", f"{lake}/features", "--rounds", "30", "--cutoffs", "3")
    assert "gate:" in said
    said = run("score", "--engine", "spark", "--features", f"{lake}/features", "--scores-out", f"{lake}/scores",
               "--sink", f"sqlite:///{tmp_path / 'crm.db'}")
    assert f"as of 2026-06-30 (the newest snapshot in {lake}/features)" in said
    assert (tmp_path / "lake" / "scores" / "as_of=2026-06-30").is_dir()
    newest = pd.read_parquet(tmp_path / "lake" / "features" / "as_of=2026-06-30")
    engine = sa.create_engine(f"sqlite:///{tmp_path / 'crm.db'}")
    try:
        with engine.connect() as conn:
            crm = pd.read_sql("SELECT account_id, as_of FROM account_scores", conn)
    finally:
        engine.dispose()
    assert sorted(crm["account_id"]) == sorted(newest["account_id"]) and len(crm) > 100
    assert {str(d)[:10] for d in crm["as_of"]} == {"2026-06-30"}
    from serving.store.plays import PlayStore

    store = PlayStore(Settings(_env_file=None))  # EXPANSION_HOME: the run's product store
    try:
        drawn = store.frame()
    finally:
        store.close()
    # the default 10 % holdout was drawn on Spark and stored once the scores were written
    assert len(drawn) > 50 and {str(d)[:10] for d in drawn["episode_start"]} == {"2026-06-30"}
    assert set(drawn["arm"]) == {"hold_out", "recommend"}


def test_spark_batch_draws_and_follows_play_holdouts_like_the_in_process_batch(spark_engine, spark_features_path: Path,  # noqa: ANN001
                                                                               scorer, tmp_path: Path) -> None:
    from features.play_assignment import HOLD_OUT, Assigner, draw
    from serving.sinks import open_sink
    from serving.scoring.spark_batch import score_snapshot_spark

    session = spark_session_of(spark_engine.backend)
    settings = Settings(_env_file=None, play_holdout_share=0.3)
    features = pd.read_parquet(spark_features_path)
    features = features[pd.to_datetime(features["as_of"]) == pd.Timestamp(SCORED_AS_OF)].reset_index(drop=True)
    # one stored assignment from an earlier run: followed, never re-drawn
    stored = draw(str(features["account_id"].iloc[0]), "cross_sell", SCORED_AS_OF - dt.timedelta(days=10), 1.0,
                  settings.play_holdout_seed, settings.play_episode_days)
    assert stored.arm == HOLD_OUT
    on_spark = Assigner.for_run(SCORED_AS_OF, settings, [stored])
    in_process = Assigner.for_run(SCORED_AS_OF, settings, [stored])
    sink = open_sink(f"sqlite:///{tmp_path / 'crm.db'}", settings)
    try:
        score_snapshot_spark(session.read.parquet(str(spark_features_path)), scorer.with_assigner(on_spark), session,
                             SCORED_AS_OF, SCORED_AT, sink=sink, chunk_size=97)
        crm = sink.read_table("current").sort_values("account_id", ignore_index=True)
    finally:
        sink.close()
    expected = (scorer.with_reference(features).with_assigner(in_process).score(features)
                .sort_values("account_id", ignore_index=True))
    for column in ("recommended_play", "control_group_plays"):
        assert crm[column].astype(object).where(crm[column].notna(), None).tolist() == \
            expected[column].astype(object).where(expected[column].notna(), None).tolist(), column
    # the driver repeated exactly the executors' draws: the same new assignments as the in-process run
    assert sorted(on_spark.new, key=repr) == sorted(in_process.new, key=repr) and len(on_spark.new) > 20
    held = [a for a in on_spark.new if a.arm == HOLD_OUT]
    assert held and not {(a.account_id, a.play) for a in held} & set(zip(crm["account_id"], crm["recommended_play"]))
    first = crm.set_index("account_id").loc[stored.account_id]
    assert "cross_sell" in first["control_group_plays"].split(", ") and first["recommended_play"] != "cross_sell"
