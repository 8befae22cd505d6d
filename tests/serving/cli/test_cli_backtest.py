"""`expansion backtest` and the snapshot dates of `expansion features`, on the shared generated company."""

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


@pytest.mark.slow
def test_backtest_replays_cutoffs_and_writes_the_tables(generated_company, cli_env):
    out = cli_env / "bt.csv"
    result = CliRunner().invoke(app, ["backtest", "--data", str(generated_company), "--cutoffs", "2", "--rounds", "50",
                                      "--out", str(out)])
    assert result.exit_code == 0, result.output
    assert "pooled over the replayed months" in result.stdout and "top_decile_expansion_mrr_share" in result.stdout
    summary = pd.read_csv(out)
    assert set(summary["model_name"]) == {"expansion", "churn"}
    assert {"served", "model", "baseline", "served - baseline", "model - baseline", "current_mrr"} <= set(summary["scorer"])
    assert "expansion served:" in result.stdout and "ranking by current MRR" in result.stdout
    assert ((summary["low"] <= summary["value"]) & (summary["value"] <= summary["high"])).all()
    assert (summary["low"] <= summary["high"]).all() and (summary["positives"] > 0).all()
    cutoffs = pd.read_csv(cli_env / "bt_cutoffs.csv")
    assert cutoffs["cutoff"].nunique() == 2 and set(cutoffs["decision"]) <= {"promoted", "rejected"}
    assert "model_precision" in pd.read_csv(cli_env / "bt_books.csv").columns


def test_backtest_names_why_no_cutoff_fits(generated_company, cli_env):
    result = CliRunner().invoke(app, ["backtest", "--data", str(generated_company), "--from", "2030-01-31",
                                      "--out", str(cli_env / "bt.csv")])
    assert result.exit_code == 2 and "no cut-off fits" in result.output


def test_backtest_reuses_the_stored_snapshots_unless_asked_to_rebuild_them(generated_company, cli_env):
    args = ["backtest", "--data", str(generated_company), "--from", "2030-01-31", "--out", str(cli_env / "bt.csv")]
    store = cli_env / "home" / "snapshots" / "features"
    heard = []
    for extra in ([], [], ["--rebuild-snapshots"]):
        result = CliRunner().invoke(app, args + extra)
        assert result.exit_code == 2, result.output  # the features are built before the cut-offs are chosen
        heard += [line for line in result.stderr.splitlines() if line.startswith("feature snapshots")]
    assert [line.split(", in ")[0] for line in heard] == [
        "feature snapshots: 0 reused, 18 rebuilt (18 not stored)", "feature snapshots: 18 reused, 0 rebuilt",
        "feature snapshots: 0 reused, 18 rebuilt (18 rebuild asked)"]
    assert len(list(store.glob("as_of=*/snapshot.parquet"))) == 18


def test_features_without_dates_cover_every_month_end_and_refuse_dates_after_the_data(generated_company, cli_env):
    out = cli_env / "f.parquet"
    ok = CliRunner().invoke(app, ["features", "--data", str(generated_company), "--out", str(out)])
    assert ok.exit_code == 0, ok.output
    dates = pd.read_parquet(out, columns=["as_of"])["as_of"].drop_duplicates().sort_values()
    assert dates.iloc[-1] == pd.Timestamp("2026-06-30") and len(dates) == 18
    late = CliRunner().invoke(app, ["features", "--data", str(generated_company), "--out", str(out), "--from",
                                    "2026-01-31", "--to", "2027-01-31"])
    assert late.exit_code == 2 and "snapshot 2027-01-31 is after the data end 2026-06-30" in late.output
