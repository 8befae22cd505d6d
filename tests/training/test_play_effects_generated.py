"""Play effects recovered on a generated company whose plays have known effects; and the command that reports them.

Sizes: 800 accounts x 18 months with half of the eligible accounts held out, every recommended
account treated (compliance 1) and the seat play's lift doubled. The seat play then has about
450 read episodes a group and an estimated effect of +0.37 on the 90-day expansion rate
(interval +0.31 to +0.42), where the difference's standard error is about 0.03: the test asks
only for a lower end above +0.05, some 10 standard errors below the estimate, so no small
change to the generator can push it across. The placebo is checked with a 99 %
interval (a 1 % chance that a good estimate misses 0, against 10 % at 90 %). The company is
generated from a fixed seed, so each run sees the same numbers.
"""

from __future__ import annotations

import datetime as dt
import re
from pathlib import Path

import pandas as pd
import pytest
from typer.testing import CliRunner

from features.config import Settings
from features.io import open_data
from features.play_assignment import draw
from features.play_outcomes import episode_outcomes
from features.synth import PlayEffects, generate
from serving.cli import app
from training.play_effect import play_effects

CFG = PlayEffects(share=0.5, compliance=1.0, seat_lift=3.0)


@pytest.fixture(scope="module")
def company(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("plays")
    generate(out, accounts=800, months=18, seed=4, as_of=dt.date(2026, 6, 30), plays=CFG)
    return out


def test_the_generator_assigns_with_the_products_hash_and_treats_only_recommended(company: Path) -> None:
    episodes = pd.read_parquet(company / "play_assignments.parquet")
    assert set(episodes["play"]) == {"upgrade_conversation", "seat_expansion", "success_plan_review", "cross_sell"}
    assert not episodes.loc[episodes["arm"] == "hold_out", "done"].any()
    assert episodes.loc[episodes["arm"] == "recommend", "done"].all()  # compliance 1
    for row in episodes.sample(50, random_state=0).itertuples():
        again = draw(row.account_id, row.play, row.episode_start.date(), CFG.share, CFG.seed, CFG.episode_days)
        assert again.arm == row.arm and pd.Timestamp(again.episode_end) == row.episode_end


def test_a_large_effect_is_recovered_and_the_placebo_shows_none(company: Path) -> None:
    episodes = pd.read_parquet(company / "play_assignments.parquet")
    source = open_data(company)
    try:
        read = episode_outcomes(source, episodes, CFG.episode_days)
    finally:
        source.close()
    seat = {e.play: e for e in play_effects(read, replicates=400)}["seat_expansion"]
    assert seat.status == "measured" and seat.effect.low > 0.05, seat
    placebo = {e.play: e for e in play_effects(read, replicates=400, confidence=0.99)}["cross_sell"]
    assert placebo.effect.low < 0 < placebo.effect.high, placebo


def test_the_command_prints_each_plays_effect_and_says_when_there_is_nothing(company: Path, tmp_path: Path,
                                                                            monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("EXPANSION_HOME", str(tmp_path / "home"))
    monkeypatch.setenv("EXPANSION_BOOTSTRAP_REPLICATES", "100")
    monkeypatch.chdir(tmp_path)
    runner = CliRunner()
    nothing = runner.invoke(app, ["plays", "effect", "--data", str(company)])
    assert nothing.exit_code == 2 and "no play assignments yet" in nothing.output
    report = tmp_path / "home" / "plays" / "effects.json"
    assert not report.exists()  # a run that measured nothing leaves no report
    done = runner.invoke(app, ["plays", "effect", "--data", str(company), "--assignments",
                               str(company / "play_assignments.parquet")])
    assert done.exit_code == 0, done.output
    for play in ("seat_expansion", "cross_sell", "success_plan_review"):
        assert play in done.output
    said = " ".join(done.output.split())
    assert "eligible accounts a month" in said and "mixes the play with why a CSM chose" in said
    assert re.search(r"seat_expansion: renewed (too early to tell|[+-][\d.]+ points \[[+-][\d.]+, [+-][\d.]+\]), "
                     r"over [\d,]+ recommended / [\d,]+ held-out episodes with a renewal due", said), said[-1500:]
    assert re.search(r"seat_expansion: ranking in force: (readiness: |uplift: )", said)
    assert "cross_sell: ranking in force: readiness" in said
    assert "100 %" in said  # logged done: the generator's CSMs ran every recommended play
    from serving.jobs.plays import stored_report

    stored = stored_report(Settings(_env_file=None, home=tmp_path / "home"))  # what the leadership page shows
    assert f"stored for the leadership page: {report}" in said and stored is not None
    assert {"seat_expansion", "cross_sell", "success_plan_review"} <= {r["play"] for r in stored["rows"]}
    assert all(r["play"] in said and r["ranking_why"] in said for r in stored["rows"])  # the same report as printed
    assert stored["data_end"] == "2026-06-30"  # the generated company's data end


def test_generate_with_plays_writes_the_assignments_with_the_settings_share(tmp_path: Path,
                                                                           monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("EXPANSION_PLAY_HOLDOUT_SHARE", "0.25")
    runner = CliRunner()
    out = tmp_path / "co"
    done = runner.invoke(app, ["generate", "--out", str(out), "--accounts", "150", "--months", "6",
                               "--as-of", "2026-06-30", "--plays"])
    assert done.exit_code == 0, done.output
    episodes = pd.read_parquet(out / "play_assignments.parquet")
    assert len(episodes) > 20 and (episodes["share"] == 0.25).all()
    refused = runner.invoke(app, ["generate", "--out", str(tmp_path / "x"), "--accounts", "10", "--plays", "--messy"])
    assert refused.exit_code != 0 and "cannot be combined" in refused.output
