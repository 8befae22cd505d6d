"""`expansion forecast` (forecast, --track, --backtest) and `expansion metrics --view pipeline` on the generated company."""

from __future__ import annotations

import json
import shutil

import pytest
from typer.testing import CliRunner

from serving.cli import app

runner = CliRunner()


@pytest.fixture
def cli_env(tmp_path, monkeypatch):
    monkeypatch.setenv("EXPANSION_HOME", str(tmp_path / "home"))
    monkeypatch.setenv("MLFLOW_TRACKING_URI", f"sqlite:///{tmp_path / 'mlflow.db'}")
    return tmp_path


def test_pipeline_view_shows_coverage_conversion_and_zombies(generated_company, cli_env):
    out = runner.invoke(app, ["metrics", "--data", str(generated_company), "--view", "pipeline", "--as-of", "2026-06-30",
                              "--by", "segment", "--format", "json"])
    assert out.exit_code == 0, out.output
    report = json.loads(out.stdout)
    assert set(report) == {"by_stage", "coverage", "conversion", "zombies", "win_rate"}
    assert {r["group"] for r in report["coverage"]} == {"smb", "mid_market", "enterprise"}
    assert all(r["coverage_pct"] is not None and r["coverage_pct"] >= 0 for r in report["coverage"])
    assert {r["deals"] for r in report["zombies"]} == {"faster", "zombie (>30d in a stage)"}
    table = runner.invoke(app, ["metrics", "--data", str(generated_company), "--view", "pipeline", "--as-of", "2026-06-30"])
    assert table.exit_code == 0 and "pipeline coverage" in table.stdout and "zombies" in table.stdout
    owners = runner.invoke(app, ["metrics", "--data", str(generated_company), "--view", "pipeline", "--as-of", "2026-06-30",
                                 "--by", "owner", "--format", "json"])
    assert owners.exit_code == 0 and json.loads(owners.stdout)["by_stage"]


def test_pipeline_view_names_the_missing_table_and_bad_grouping(generated_company, cli_env):
    folder = cli_env / "no_pipeline"
    shutil.copytree(generated_company, folder)
    (folder / "opportunity_stages.parquet").unlink()
    (folder / "opportunities.parquet").unlink()
    out = runner.invoke(app, ["metrics", "--data", str(folder), "--view", "pipeline", "--as-of", "2026-06-30"])
    assert out.exit_code == 2 and "opportunities: table is absent" in out.output
    bad = runner.invoke(app, ["metrics", "--data", str(generated_company), "--view", "pipeline", "--by", "industry",
                              "--as-of", "2026-06-30"])
    assert bad.exit_code == 2 and "segment or owner" in bad.output


def test_forecast_without_champions_says_so(generated_company, cli_env):
    out = runner.invoke(app, ["forecast", "--data", str(generated_company), "--as-of", "2026-06-30"])
    assert out.exit_code == 3 and "no champion" in out.output


@pytest.mark.slow
def test_forecast_is_stored_tracked_and_backtested(generated_company, feature_frame, cli_env):
    path = cli_env / "features.parquet"
    feature_frame.to_parquet(path)
    trained = runner.invoke(app, ["train", "--features", str(path), "--rounds", "40"])
    assert trained.exit_code == 0, trained.output
    listed = json.loads(runner.invoke(app, ["models", "--format", "json"]).stdout)
    if not all("champion" in v["aliases"] for v in listed):
        for v in listed:
            assert runner.invoke(app, ["promote", "--model", v["name"], "--version", v["version"]]).exit_code == 0
    out = runner.invoke(app, ["forecast", "--data", str(generated_company), "--as-of", "2026-03-31", "--draws", "300",
                              "--json"])
    assert out.exit_code == 0, out.output
    body = json.loads(out.stdout)
    assert body["as_of"] == "2026-03-31" and {g["group"] for g in body["groups"]} == {"all", "smb", "mid_market", "enterprise"}
    total = next(g for g in body["groups"] if g["group"] == "all")
    assert total["expansion_arr_low95"] <= total["expansion_arr_low80"] <= total["expansion_arr"] <= total["expansion_arr_high80"]
    table = runner.invoke(app, ["forecast", "--data", str(generated_company), "--as-of", "2026-06-30", "--draws", "300"])
    assert table.exit_code == 0 and "expansion ARR" in table.stdout
    # one past forecast with an outcome (March's horizon ended 2026-06-29) is too little to calibrate on
    assert "the model's intervals: the draws' own. 1 past forecast(s) have outcomes" in " ".join(table.stdout.split())
    tracked = json.loads(runner.invoke(app, ["forecast", "--data", str(generated_company), "--track", "--as-of",
                                             "2026-06-30", "--json"]).stdout)
    assert {r["as_of"] for r in tracked} == {"2026-03-31"}  # the June forecast's horizon has not passed
    assert {r["measure"] for r in tracked} == {"expansion_arr", "contraction_arr", "churned_arr", "nrr_pct"}
    assert all(r["actual"] is not None for r in tracked)
    for month_end in ("2025-12-31", "2026-01-31", "2026-02-28"):  # with March: four monthly forecasts due by June
        assert runner.invoke(app, ["forecast", "--data", str(generated_company), "--as-of", month_end, "--draws", "300"]).exit_code == 0
    june = json.loads(runner.invoke(app, ["forecast", "--data", str(generated_company), "--as-of", "2026-06-30",
                                          "--draws", "300", "--json"]).stdout)
    calibration = {(r["group"], r["measure"]): r for r in june["calibration"]}
    assert calibration[("all", "expansion_arr")]["residuals"] == 4
    assert calibration[("all", "expansion_arr")]["effective"] >= 2  # overlapping horizons: worth about 2.3
    assert all(r["scale80"] != 1.0 for r in june["calibration"] if r["effective"] >= 2)
    assert all(g["track_record"] >= 2 for g in june["groups"])
    bt = runner.invoke(app, ["forecast", "--data", str(generated_company), "--backtest", "--rounds", "30", "--draws", "200"])
    assert bt.exit_code == 0, bt.output
    assert "naive_mean4" in bt.stdout and "MdAPE" in bt.stdout and "cut-offs x segments, held" in bt.stdout
    assert list((cli_env / "home" / "mlartifacts").rglob("forecast_backtest.png"))
    assert "MdAPE exp % (n)" in bt.stdout and "live" in bt.stdout
    # the backtest's record is stored; the live forecast chooses on it and says which method serves, and why
    again = runner.invoke(app, ["forecast", "--data", str(generated_company), "--as-of", "2026-06-30", "--draws", "300",
                                "--json"])
    body = json.loads(again.stdout)
    assert {(c["group"], c["measure"]) for c in body["choice"]} == {
        (g, m) for g in ("all", "smb", "mid_market", "enterprise")
        for m in ("expansion_arr", "contraction_arr", "churned_arr", "nrr_pct")}
    total = next(g for g in body["groups"] if g["group"] == "all")
    assert total["expansion_arr_method"] in {"model", "naive_last", "naive_mean4", "blend"}
    assert total["expansion_arr_past_cutoffs"] >= 1  # the backtest's cut-offs are its record
    words = " ".join(runner.invoke(app, ["forecast", "--data", str(generated_company), "--as-of", "2026-06-30",
                                         "--draws", "300"]).stdout.split())
    assert "which forecast serves" in words and "past cut-off" in words and "interval:" in words
