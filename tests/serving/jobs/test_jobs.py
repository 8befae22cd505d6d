"""The jobs: one call each on a source, settings and an as-of that defaults to the data end; typed errors, no exits."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import pandas as pd
import pytest
from typer.testing import CliRunner

from features.config import Settings
from features.io import ContractError, DataError, open_data
from serving.cli import app

runner = CliRunner()
DATA_END = dt.date(2025, 7, 31)  # the tiny company's newest usage day, long before today


@pytest.fixture
def home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("EXPANSION_HOME", str(tmp_path / "home"))
    monkeypatch.chdir(tmp_path)  # no stray .env
    return tmp_path / "home"


def test_span_data_end_and_checked_say_where_the_data_ends(tiny_company) -> None:
    source = open_data(tiny_company())
    try:
        assert source.span() == (dt.date(2024, 10, 1), DATA_END)
        chosen = source.checked()
        assert (chosen.day, chosen.newest) == (DATA_END, DATA_END) and "the data end" in chosen.describe("x")
        given = source.checked(dt.date(2025, 3, 31))
        assert (given.day, given.why) == (dt.date(2025, 3, 31), "--as-of")
    finally:
        source.close()


def test_checked_lists_every_violation_and_names_missing_tables(tiny_company) -> None:
    def break_it(tables: dict[str, pd.DataFrame]) -> None:
        tables["usage_daily"].loc[0, "events"] = -5

    source = open_data(tiny_company(break_it))
    heard = []
    with pytest.raises(ContractError) as caught:
        source.checked(on_as_of=heard.append)
    assert [h.day for h in heard] == [DATA_END]  # the as-of is said before the contract fails
    assert any(v.table == "usage_daily" and v.column == "events" for v in caught.value.violations)
    source.close()
    folder = tiny_company()
    (folder / "usage_daily.parquet").unlink()
    bare = open_data(folder)
    with pytest.raises(DataError, match="usage_daily"):
        bare.checked()
    with pytest.raises(DataError, match="usage_daily is missing"):
        bare.span()


def test_on_an_old_export_alerts_and_forecast_default_to_the_data_end(tiny_company, home) -> None:
    data = str(tiny_company())
    dry = runner.invoke(app, ["alerts", "--data", data, "--dry-run"])
    assert dry.exit_code == 0, dry.output
    assert f"alerts: as of {DATA_END} (the data end" in dry.stderr and f"alerts as of {DATA_END}" in dry.stdout
    forecast = runner.invoke(app, ["forecast", "--data", data])  # no champion here: exit 3 after saying the as-of
    assert f"forecast: as of {DATA_END} (the data end" in forecast.stderr
    assert forecast.exit_code == 3 and "no champion" in forecast.output


def test_the_alerts_job_is_one_call_with_a_typed_result_and_typed_errors(tiny_company, home, monkeypatch) -> None:
    from serving.jobs import InvalidInput, alerts_job

    source = open_data(tiny_company())
    said: list[str] = []
    try:
        run = alerts_job(source, Settings(home=home), dry_run=True, say=said.append)
        assert run.as_of == DATA_END and run.dry_run and said == [f"alerts: as of {DATA_END} (the data end: the newest usage_daily day)"]
        rules = home.parent / "rules.toml"
        rules.write_text('[[rule]]\nname = "r"\noutcome = "expanded"\nall = [{ feature = "nope", op = ">=", value = 1 }]\n')
        with pytest.raises(InvalidInput) as caught:
            alerts_job(source, Settings(home=home, alerts_rules=rules), dry_run=True)
        assert caught.value.exit_code == 2 and "'nope'" in str(caught.value)
    finally:
        source.close()


def test_the_score_job_writes_the_data_end_snapshot_and_says_so(tiny_company, home) -> None:
    from serving.jobs import score_job

    source = open_data(tiny_company())
    said: list[str] = []
    progress: list[tuple[int, int]] = []
    out = home.parent / "scores.csv"
    try:
        run = score_job(source, Settings(home=home), sink=f"csv:{out}", models="none", chunk_size=2,
                        on_progress=lambda done, total: progress.append((done, total)), say=said.append)
    finally:
        source.close()
    assert run.summary.as_of == DATA_END and run.problem is None and run.alerts is None
    assert said[0].startswith(f"score: as of {DATA_END} (the data end") and said[1].startswith("models:")
    assert said[2].startswith(f"features: built afresh for {DATA_END}, not from yesterday's snapshot plus one day")
    total = run.summary.accounts
    assert progress[-1] == (total, total) and len(progress) == -(-total // 2)
    assert len(pd.read_csv(out)) == total


def test_the_score_job_draws_play_holdouts_once_and_never_recommends_a_held_out_play(generated_company, home) -> None:
    from features.play_assignment import HOLD_OUT
    from serving.jobs import InvalidInput, score_job
    from serving.store.plays import PlayStore

    settings = Settings(home=home, play_holdout_share=0.3)
    out = home.parent / "scores.csv"
    source = open_data(generated_company)
    try:
        run = score_job(source, settings, sink=f"csv:{out}", models="none")
        store = PlayStore(settings)
        first = store.frame()
        score_job(source, Settings(home=home, play_holdout_share=0.3, play_holdout_seed=99), sink=f"csv:{out}",
                  models="none")  # the same day again with another seed: nothing is re-drawn
        again = store.frame()
        store.close()
        with pytest.raises(InvalidInput, match="play_holdout_shares: unknown play"):
            score_job(source, Settings(home=home, play_holdout_shares={"no_such_play": 0.2}), sink=f"csv:{out}",
                      models="none")
    finally:
        source.close()
    assert len(first) > 50 and (first["episode_start"] == pd.Timestamp(run.summary.as_of)).all()
    assert again.drop(columns="assigned_at").equals(first.drop(columns="assigned_at"))
    scores = pd.read_csv(out)
    held = set(zip(first.loc[first["arm"] == HOLD_OUT, "account_id"], first.loc[first["arm"] == HOLD_OUT, "play"]))
    assert len(held) > 10
    assert not held & set(zip(scores["account_id"].astype(str), scores["recommended_play"]))
    # the CRM row says which control groups each account is in: every held-out play, and nothing for the others
    expected = first[first["arm"] == HOLD_OUT].groupby("account_id")["play"].agg(lambda p: ", ".join(sorted(p)))
    said = scores.set_index(scores["account_id"].astype(str))["control_group_plays"]
    assert said.dropna().to_dict() == expected.to_dict()
