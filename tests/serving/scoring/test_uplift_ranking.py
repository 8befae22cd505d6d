"""The uplift ranking, wired: stored when it earns its place, used by the scoring run, and ordering the play's accounts.

Episodes are the generated company's month-end rows (600 accounts, 17 months before the last), half
held out. In the "earns" company the play adds +50 points to the expansion chance of accounts with
above-median tenure and nothing for the rest, while readiness only raises the base rate: the same
shape as tests/training/test_play_uplift.py, where the paired Qini gain lies some 7 standard errors
above 0. In the "does not" company the play adds nothing for anyone, so no uplift model is stored.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from features.config import Settings
from features.io import open_data
from serving.scoring.models import ModelChoice, scorer_for
from serving.web.book import play_order
from training.baseline import readiness
from training.play_effect import primary_outcome
from training.play_uplift import READINESS, UPLIFT
from training.uplift_model import load_uplift, uplift_dir


def _last_month(feature_frame: pd.DataFrame) -> pd.DataFrame:
    return feature_frame[feature_frame["as_of"] == feature_frame["as_of"].max()].reset_index(drop=True)


@pytest.fixture(scope="module")
def play(feature_frame: pd.DataFrame) -> str:
    """The expansion play the rules recommend most in the last month (the one with accounts to order)."""
    last = _last_month(feature_frame)
    scored = scorer_for(ModelChoice(), Settings(_env_file=None)).with_reference(last).score(last)
    counts = scored["recommended_play"].dropna().value_counts()
    return next(p for p in counts.index if primary_outcome(str(p)) == "expanded")


def _episodes(feature_frame: pd.DataFrame, play: str, gain: float) -> pd.DataFrame:
    rng = np.random.default_rng(7)
    rows = feature_frame[feature_frame["as_of"] < feature_frame["as_of"].max()].reset_index(drop=True)
    treated = rng.random(len(rows)) < 0.5
    long = rows["tenure_months"].astype(float) > rows["tenure_months"].astype(float).median()
    ready = readiness(rows)["readiness_score"].to_numpy(dtype=float) / 100
    p = 0.05 + 0.3 * ready + np.where(treated & long.to_numpy(), gain, 0.0)
    start = pd.to_datetime(rows["as_of"])
    return pd.DataFrame({"account_id": rows["account_id"].astype(str), "play": play, "episode_start": start,
                         "episode_end": start + pd.Timedelta(days=90), "arm": np.where(treated, "recommend", "hold_out"),
                         "expanded": (rng.random(len(rows)) < p).astype(float)})


def _judge_and_score(generated_company: Path, feature_frame: pd.DataFrame, play: str, gain: float,
                     home: Path) -> tuple[list, pd.DataFrame]:
    from serving.jobs.plays import ranking_job

    settings = Settings(_env_file=None, home=home, bootstrap_replicates=200)
    source = open_data(generated_company)
    try:
        decisions = ranking_job(source, settings, _episodes(feature_frame, play, gain), save=True)
    finally:
        source.close()
    last = _last_month(feature_frame)
    return decisions, scorer_for(ModelChoice(), settings).with_reference(last).score(last)


def test_an_uplift_ranking_that_earns_its_place_is_stored_used_by_the_score_run_and_orders_the_play(
        generated_company: Path, feature_frame: pd.DataFrame, play: str, tmp_path: Path) -> None:
    decisions, scores = _judge_and_score(generated_company, feature_frame, play, 0.5, tmp_path)
    (decision,) = decisions
    assert decision.supported == UPLIFT, decision.why
    assert "the scoring run ranks this play's accounts by their expected gain" in decision.why
    assert [p.name for p in uplift_dir(tmp_path).iterdir()] == [f"{play}.json"]
    model = load_uplift(tmp_path)[play]
    mine = scores["recommended_play"].eq(play).fillna(False).to_numpy(dtype=bool)
    assert mine.sum() >= 10
    # the score row carries the stored model's prediction for the play's accounts, and nothing for the others
    last = _last_month(feature_frame)
    assert np.allclose(scores.loc[mine, "play_uplift"].to_numpy(dtype=float), model.predict(last[mine]))
    assert scores.loc[~mine, "play_uplift"].isna().all()
    # the model learned who gains: long-tenured accounts are predicted to gain more
    long = last["tenure_months"].astype(float) > last["tenure_months"].astype(float).median()
    gains = scores["play_uplift"].astype(float)
    assert gains[mine & long].mean() > gains[mine & ~long].mean() + 0.1
    ids, ranking = play_order(scores, play)
    assert ranking == "uplift" and len(ids) == mine.sum()
    ordered = scores.set_index("account_id").loc[ids, "play_uplift"].astype(float).to_numpy()
    assert (np.diff(ordered) <= 0).all()


def test_when_uplift_does_not_earn_its_place_nothing_changes(generated_company: Path, feature_frame: pd.DataFrame,
                                                              play: str, tmp_path: Path) -> None:
    (uplift_dir(tmp_path) / "x").mkdir(parents=True)  # a model stored by an earlier run goes with the new decision
    decisions, scores = _judge_and_score(generated_company, feature_frame, play, 0.0, tmp_path)
    assert decisions[0].supported == READINESS, decisions[0].why
    assert load_uplift(tmp_path) == {} and not list(uplift_dir(tmp_path).iterdir())
    assert scores["play_uplift"].isna().all()
    ids, ranking = play_order(scores, play)
    assert ranking == "readiness"
    ordered = scores.set_index("account_id").loc[ids, "readiness_score"].astype(float).to_numpy()
    assert len(ids) > 0 and (np.diff(ordered) <= 0).all()
