"""End to end on the shared generated company: `expansion train`, `models`, `retrain` into a fresh MLflow store."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
from typer.testing import CliRunner

from serving.cli import app


@pytest.fixture
def cli_env(tmp_path, monkeypatch):
    monkeypatch.setenv("EXPANSION_HOME", str(tmp_path / "home"))
    monkeypatch.setenv("MLFLOW_TRACKING_URI", f"sqlite:///{tmp_path / 'mlflow.db'}")
    return tmp_path


@pytest.mark.slow
def test_train_registers_both_models_next_to_the_baseline(feature_frame, cli_env):
    path = cli_env / "features.parquet"
    feature_frame.to_parquet(path)
    runner = CliRunner()
    out = runner.invoke(app, ["train", "--features", str(path), "--rounds", "60"])
    assert out.exit_code == 0, out.output
    assert "baseline" in out.stdout and "roc_auc" in out.stdout and "pooled out-of-time" in out.stdout
    assert "positives in" in out.stdout and "gate:" in out.stdout
    listed = json.loads(runner.invoke(app, ["models", "--format", "json"]).stdout)
    assert sorted((v["name"], v["version"]) for v in listed) == [("churn", "1"), ("expansion", "1")]
    for v in listed:
        assert "challenger" in v["aliases"]
        assert ("champion" in v["aliases"]) == (v["gate"] == "promoted")
        assert v["metrics"]["roc_auc"] > v["baseline_metrics"]["roc_auc"] or v["gate"] == "rejected"
        for key in ("roc_auc", "pr_auc", "lift_top_decile", "brier", "ece"):
            assert np.isfinite(v["metrics"][key]) and np.isfinite(v["baseline_metrics"][key])
        assert int(v["gate_positives"]) > 0 and "98% interval" in v["gate_gain_over_baseline"]
    table = runner.invoke(app, ["models"])
    assert table.exit_code == 0 and "gain over baseline" in table.stdout and "expansion v1:" in table.stdout
    assert (cli_env / "home" / "mlartifacts").is_dir()  # artifacts under home, not ./mlruns


def test_train_names_a_missing_feature_file(cli_env):
    out = CliRunner().invoke(app, ["train", "--features", str(cli_env / "nope.parquet")])
    assert out.exit_code == 2 and "nope.parquet" in out.output


@pytest.mark.slow
def test_retrain_builds_trains_and_reports_drift(generated_company, cli_env):
    out = CliRunner().invoke(app, ["retrain", "--data", str(generated_company), "--rounds", "40", "--cutoffs", "3"])
    assert out.exit_code in (0, 4), out.output
    assert "PSI" in out.stdout and "baseline" in out.stdout
    assert "retrain: as of 2026-06-30 (the data end" in out.output
    listed = json.loads(CliRunner().invoke(app, ["models", "--format", "json"]).stdout)
    assert {v["name"] for v in listed} == {"expansion", "churn"}
    # exit 0 exactly when the gate promoted a model; 4 (kept the current models) otherwise, saying why
    promoted = [v["name"] for v in listed if v["gate"] == "promoted"]
    assert (out.exit_code == 0) == bool(promoted)
    for v in listed:
        if v["gate"] != "promoted":
            assert f"kept the current {v['name']} model: v{v['version']} was not promoted" in out.stdout


def test_cutoffs_below_the_floor_are_refused(feature_frame, cli_env):
    path = cli_env / "features.parquet"
    feature_frame.to_parquet(path)
    out = CliRunner().invoke(app, ["train", "--features", str(path), "--cutoffs", "2"])
    assert out.exit_code == 2 and "--cutoffs" in out.output


def test_a_short_history_is_refused_naming_what_is_missing(feature_frame, cli_env):
    path = cli_env / "features.parquet"
    short = feature_frame[feature_frame["as_of"] <= feature_frame["as_of"].min() + pd.offsets.MonthEnd(9)]
    short = short.assign(**{c: short[c].where(short["as_of"] <= short["as_of"].max() - pd.Timedelta(days=90))
                            for c in ("expanded", "churned", "contracted")})
    short.to_parquet(path)
    out = CliRunner().invoke(app, ["train", "--features", str(path)])
    assert out.exit_code == 2 and "not enough labelled history" in out.output and "more month(s) of history" in out.output


def test_an_unreachable_registry_exits_3_naming_it(tmp_path, monkeypatch):
    monkeypatch.setenv("EXPANSION_HOME", str(tmp_path / "home"))
    monkeypatch.setenv("MLFLOW_TRACKING_URI", "http://127.0.0.1:9")  # the discard port: nothing answers
    monkeypatch.setenv("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "0")
    monkeypatch.setenv("MLFLOW_HTTP_REQUEST_TIMEOUT", "2")
    for command in (["rollback", "--model", "churn"], ["promote", "--model", "churn", "--version", "1"]):
        out = CliRunner().invoke(app, command)
        assert out.exit_code == 3, out.output
        assert "MLflow registry" in out.output or "127.0.0.1:9" in out.output
