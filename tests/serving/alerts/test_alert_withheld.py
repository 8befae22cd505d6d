"""A rule whose stored backtest shows it anti-predicting on this company is recorded but not sent, and says so;
a later backtest that clears it sends it again."""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from pathlib import Path

import pandas as pd
import pytest
from typer.testing import CliRunner

from features.config import Settings
from features.io import open_data
from serving.alerts.run import open_store, run_alerts

FIRST, SECOND = dt.date(2025, 3, 1), dt.date(2025, 3, 31)
CLOCK = lambda: dt.datetime(2025, 4, 1, 8, 0, tzinfo=dt.UTC)  # noqa: E731 - the entry point's clock, fixed


def _boost(tables: dict[str, pd.DataFrame]) -> None:
    """A1 uses 15 more events a day from 2025-03-10: over its quota by 2025-03-31 (it enters usage_near_limit)."""
    u = tables["usage_daily"]
    boost = (u["account_id"] == "A1") & (pd.to_datetime(u["date"]) >= "2025-03-10") & (u["feature_key"] == "dash")
    u.loc[boost, "events"] = u.loc[boost, "events"] + 15


@pytest.fixture
def company(tiny_company: Callable[..., Path]) -> Path:
    return tiny_company(_boost)


def _record(rule: str, lift: float, low: float, high: float, episodes: int = 300, positives: int = 12) -> pd.DataFrame:
    return pd.DataFrame([{"rule": rule, "outcome": "expanded", "episodes": episodes, "positives": positives,
                          "rate": positives / episodes, "rate_low": 0.02, "rate_high": 0.06, "base_rate": 0.1,
                          "lift": lift, "lift_low": low, "lift_high": high, "arr_at_fire": 1.0, "outcome_arr": 1.0}])


def _run(data: Path, day: dt.date, settings: Settings, dry_run: bool = True):  # noqa: ANN202
    source = open_data(data)
    try:
        return run_alerts(source, day, settings, clock=CLOCK, sleep=lambda s: None, dry_run=dry_run)
    finally:
        source.close()


def test_an_anti_predicting_rule_is_withheld_and_a_clearing_backtest_sends_it_again(company, tmp_path) -> None:
    settings = Settings(_env_file=None, home=tmp_path / "home")
    store = open_store(settings)
    store.save_track_record(_record("usage_near_limit", 0.4, 0.25, 0.6), CLOCK())
    store.close()
    _run(company, FIRST, settings, dry_run=False)  # the state a month earlier (no routing: nothing delivered)
    result = _run(company, SECOND, settings)
    status = dict(zip(result.episodes["rule"], result.episodes["status"]))
    assert status["usage_near_limit"] == "withheld" and status["readiness_outreach"] == "queued"
    assert "lift interval lies below 1" in result.withheld["usage_near_limit"]
    store = open_store(settings)
    store.save_track_record(_record("usage_near_limit", 2.0, 1.5, 2.6, positives=60), CLOCK())
    store.close()
    again = _run(company, SECOND, settings)
    assert dict(zip(again.episodes["rule"], again.episodes["status"]))["usage_near_limit"] == "queued"
    assert not again.withheld


def test_the_alerts_command_says_a_rule_is_not_sent(company, tmp_path, monkeypatch) -> None:
    from serving.cli import app

    monkeypatch.setenv("EXPANSION_HOME", str(tmp_path / "home"))
    settings = Settings(_env_file=None, home=tmp_path / "home")
    store = open_store(settings)
    store.save_track_record(_record("usage_near_limit", 0.9, 0.8, 1.05, episodes=400, positives=36), CLOCK())
    store.close()
    _run(company, FIRST, settings, dry_run=False)
    out = CliRunner().invoke(app, ["alerts", "--data", str(company), "--as-of", SECOND.isoformat(), "--dry-run"])
    assert out.exit_code == 0, out.output
    words = " ".join(out.stdout.split())
    assert "rule usage_near_limit not sent on this company: its lift interval includes 1" in words
    assert "not sent" in words  # the per-rule table's column


def test_the_month_long_dry_run_withholds_the_rule_too(company, tmp_path, monkeypatch) -> None:
    """``alerts --dry-run --days N`` replays daily runs: a rule its stored backtest fails is counted as withheld there,
    as a real run would, and the command says so."""
    from serving.alerts.run import simulate
    from serving.cli import app

    monkeypatch.setenv("EXPANSION_HOME", str(tmp_path / "home"))
    settings = Settings(_env_file=None, home=tmp_path / "home")
    store = open_store(settings)
    store.save_track_record(_record("usage_near_limit", 0.4, 0.25, 0.6), CLOCK())
    store.close()
    source = open_data(company)
    try:
        sim = simulate(source, SECOND, 30, settings)
    finally:
        source.close()
    mine = sim.episodes[sim.episodes["rule"] == "usage_near_limit"]
    assert len(mine) and set(mine["status"]) == {"withheld"}
    assert "lift interval lies below 1" in sim.withheld["usage_near_limit"]
    assert (sim.episodes.loc[sim.episodes["rule"] != "usage_near_limit", "status"] != "withheld").all()
    out = CliRunner().invoke(app, ["alerts", "--data", str(company), "--as-of", SECOND.isoformat(), "--dry-run",
                                   "--days", "30"])
    assert out.exit_code == 0, out.output
    assert "rule usage_near_limit not sent on this company: its lift interval lies below 1" in " ".join(out.stdout.split())
