"""`expansion monitor` end to end on the shared generated company: a past score run against what happened."""

from __future__ import annotations

import pandas as pd
import pytest
from typer.testing import CliRunner

from serving.cli import app


@pytest.fixture
def cli_env(tmp_path, monkeypatch):
    monkeypatch.setenv("EXPANSION_HOME", str(tmp_path / "home"))
    monkeypatch.setenv("MLFLOW_TRACKING_URI", f"sqlite:///{tmp_path / 'mlflow.db'}")
    monkeypatch.setenv("EXPANSION_BOOTSTRAP_REPLICATES", "100")
    return tmp_path


def test_monitor_says_when_no_run_has_reached_its_horizon(generated_company, cli_env):
    result = CliRunner().invoke(app, ["monitor", "--data", str(generated_company), "--no-mlflow"])
    assert result.exit_code == 2 and "no score run whose 90-day horizon has passed" in result.output


@pytest.mark.slow
def test_a_past_score_run_is_checked_against_what_happened(generated_company, cli_env, feature_frame):
    runner = CliRunner()
    for day in ("2026-01-31", "2026-05-31"):
        scored = runner.invoke(app, ["score", "--data", str(generated_company), "--as-of", day, "--models", "none"])
        assert scored.exit_code == 0, scored.output
    result = runner.invoke(app, ["monitor", "--data", str(generated_company), "--no-mlflow"])
    assert result.exit_code == 0, result.output
    assert "realised performance per scored month" in result.stdout and "2026-01" in result.stdout
    assert "waiting for their horizon: 2026-05" in result.stdout
    from serving.store.monitoring import MonitoringStore

    store = MonitoringStore(f"sqlite:///{cli_env / 'home' / 'state.db'}")
    try:
        track = store.read_track()
    finally:
        store.close()
    truth = feature_frame[feature_frame["as_of"] == pd.Timestamp("2026-01-31")]
    for name, label in (("expansion", "expanded"), ("churn", "churned")):
        auc = track[(track["scorer"] == "baseline") & (track["metric"] == "roc_auc") & (track["segment"] == "(all)")
                    & (track["model_name"] == name)].iloc[0]
        assert auc["positives"] == truth[label].sum() and auc["rows"] == len(truth)
        assert f"{name}: realised performance per scored month" in result.stdout
    assert "champion" not in set(track["scorer"])  # nothing served but the baseline
