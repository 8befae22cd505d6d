"""``expansion alerts``: a run, a dry run over weeks, the backtest table, snooze, and bad input."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest
from typer.testing import CliRunner

from serving.cli import app

runner = CliRunner()


def boost(tables: dict[str, pd.DataFrame]) -> None:
    u = tables["usage_daily"]
    rows = (u["account_id"] == "A1") & (pd.to_datetime(u["date"]) >= "2025-03-10") & (u["feature_key"] == "dash")
    u.loc[rows, "events"] = u.loc[rows, "events"] + 15


@pytest.fixture
def env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("EXPANSION_HOME", str(tmp_path / "home"))
    monkeypatch.chdir(tmp_path)  # no stray .env
    return tmp_path / "home"


def test_a_run_then_a_rerun_reports_episodes_once(tiny_company, env) -> None:
    data = tiny_company(boost)
    first = runner.invoke(app, ["alerts", "--data", str(data), "--as-of", "2025-03-01"])
    assert first.exit_code == 0, first.output
    second = runner.invoke(app, ["alerts", "--data", str(data), "--as-of", "2025-03-31"])
    assert second.exit_code == 0, second.output
    assert "2 new episode(s)" in second.output and "usage_near_limit" in second.output
    again = runner.invoke(app, ["alerts", "--data", str(data), "--as-of", "2025-03-31"])
    assert "0 new episode(s)" in again.output
    older = runner.invoke(app, ["alerts", "--data", str(data), "--as-of", "2025-03-01"])
    assert older.exit_code == 2 and "older" in older.output


def test_a_dry_run_over_weeks_reports_alerts_per_csm_per_week(tiny_company, env) -> None:
    data = tiny_company(boost)
    result = runner.invoke(app, ["alerts", "--data", str(data), "--as-of", "2025-03-30", "--dry-run", "--days", "14"])
    assert result.exit_code == 0, result.output
    assert "over 2 full ISO week(s)" in result.output and "kim" in result.output
    assert not (env / "crm.db").exists() or "alert_runs" not in (env / "crm.db").read_bytes().decode("latin-1")


def test_backtest_prints_a_row_per_rule_and_snooze_checks_the_rule(tiny_company, env) -> None:
    data = tiny_company()
    result = runner.invoke(app, ["alerts", "backtest", "--data", str(data), "--out", str(env.parent / "t.csv")])
    assert result.exit_code == 0, result.output
    table = pd.read_csv(env.parent / "t.csv")
    assert {"usage_near_limit", "payment_failed"} <= set(table["rule"])
    assert "stale_expansion_opportunity inactive" in result.output
    bad = runner.invoke(app, ["alerts", "snooze", "--account", "A1", "--rule", "nope", "--until", "2025-05-01"])
    assert bad.exit_code == 2 and "'nope' is not a rule" in bad.output
    ok = runner.invoke(app, ["alerts", "snooze", "--account", "A1", "--rule", "usage_drop", "--until", "2025-05-01"])
    assert ok.exit_code == 0, ok.output


def test_a_bad_rules_file_fails_naming_it(tiny_company, env, monkeypatch) -> None:
    rules = env.parent / "rules.toml"
    rules.write_text('[[rule]]\nname = "r"\noutcome = "expanded"\nall = [{ feature = "nope", op = ">=", value = 1 }]\n')
    monkeypatch.setenv("EXPANSION_ALERTS_RULES", str(rules))
    result = runner.invoke(app, ["alerts", "--data", str(tiny_company()), "--as-of", "2025-03-31", "--dry-run"])
    assert result.exit_code == 2 and "rules.toml" in result.output and "'nope'" in result.output


def test_score_runs_the_alerts_when_configured(tiny_company, env, monkeypatch) -> None:
    data = tiny_company(boost)
    monkeypatch.setenv("EXPANSION_ALERTS_ON_SCORE", "true")
    for day in ("2025-03-01", "2025-03-31"):
        result = runner.invoke(app, ["score", "--data", str(data), "--as-of", day, "--models", "none"])
        assert result.exit_code == 0, result.output
        assert f"alerts as of {day}" in result.output
    assert "2 new episode(s)" in result.output
