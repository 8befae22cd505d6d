"""Play holdouts: a seeded hash decides the arm, the same in every process; held-out accounts never get the play."""

from __future__ import annotations

import datetime as dt
import subprocess
import sys

import numpy as np
import pandas as pd
import pytest

from features.config import Settings
from features.reason_catalog import LAST_RESORT
from features.play_assignment import HOLD_OUT, RECOMMEND, Assigner, draw, unit
from serving.store.plays import PlayStore
from serving.scoring.scorer import Scorer

DAY = dt.date(2026, 3, 31)


def test_the_draw_is_the_same_in_another_process() -> None:
    ids = [f"acc{i}" for i in range(200)]
    here = [unit(a, "cross_sell", DAY, 5) for a in ids]
    code = ("import datetime as dt; from features.play_assignment import unit; "
            f"print([unit(a, 'cross_sell', dt.date(2026, 3, 31), 5) for a in {ids!r}])")
    there = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert eval(there) == here  # noqa: S307 - our own subprocess's list of floats


def test_the_held_out_share_follows_the_setting_and_the_seed_changes_who() -> None:
    arms = [draw(f"a{i}", "seat_expansion", DAY, 0.10, 1, 90).arm for i in range(20_000)]
    held = arms.count(HOLD_OUT)
    # binomial(20 000, 0.1): sd 42; 5 sd either side cannot fail by chance
    assert abs(held - 2000) < 5 * 42
    other = [draw(f"a{i}", "seat_expansion", DAY, 0.10, 2, 90).arm for i in range(20_000)]
    assert other != arms
    assert all(draw(f"a{i}", "seat_expansion", DAY, 0.0, 1, 90).arm == RECOMMEND for i in range(1000))


def test_the_assigner_keeps_stored_assignments_and_never_holds_out_the_fallback() -> None:
    settings = Settings(_env_file=None, play_holdout_share=0.5)
    stored = draw("a1", "cross_sell", DAY - dt.timedelta(days=30), 0.5, 99, 90)  # a different seed and share
    assigner = Assigner.for_run(DAY, settings, [stored])
    assert assigner.held_out("a1", "cross_sell") is stored.held_out and assigner.new == []
    assert not any(assigner.held_out(f"b{i}", LAST_RESORT) for i in range(200))
    assert [assigner.held_out(f"b{i}", "cross_sell") for i in range(50)] == \
        [assigner.held_out(f"b{i}", "cross_sell") for i in range(50)]
    assert len(assigner.new) == 50 and {a.episode_end for a in assigner.new} == {DAY + dt.timedelta(days=90)}
    off = Assigner.for_run(DAY, Settings(_env_file=None, play_holdout_shares={"cross_sell": 0.0}))
    assert not off.held_out("b1", "cross_sell") and off.new == []


def test_an_unknown_play_in_the_shares_is_refused_by_name() -> None:
    with pytest.raises(ValueError, match="play_holdout_shares: unknown play.*no_such_play"):
        Assigner.for_run(DAY, Settings(_env_file=None, play_holdout_shares={"no_such_play": 0.2}))


def test_held_out_accounts_keep_their_scores_and_are_never_recommended_the_play(make_frame) -> None:  # noqa: ANN001
    frame = make_frame(accounts=300, months=1).drop(columns=["expanded", "churned"])
    plain = Scorer().score(frame)
    assigner = Assigner(DAY, 0.4, 7, 90)
    held = Scorer().with_assigner(assigner).score(frame)
    for column in ("readiness_score", "health", "reasons", "why_high", "holds_back"):
        assert held[column].tolist() == plain[column].tolist()
    out = {(a.account_id, a.play) for a in assigner.new if a.held_out}
    assert len(out) > 20  # 40 % of 300 eligible accounts: the check below is not vacuous
    assert not any((acc, play) in out for acc, play in zip(held["account_id"], held["recommended_play"], strict=True))
    # an account recommended the play it was first in line for is in that play's recommend arm
    recommended = {(a.account_id, a.play) for a in assigner.new if not a.held_out}
    moved = held["recommended_play"] != plain["recommended_play"]
    assert set(zip(plain.loc[moved, "account_id"], plain.loc[moved, "recommended_play"], strict=True)) <= out
    kept = held.loc[~moved & (held["recommended_play"] != LAST_RESORT)]
    assert set(zip(kept["account_id"], kept["recommended_play"], strict=True)) <= recommended


@pytest.mark.parametrize("backend", ["sqlite", "postgresql"])
def test_the_store_keeps_the_first_draw_and_reads_episodes_covering_a_day(backend: str, tmp_path, request) -> None:  # noqa: ANN001
    import uuid

    uri = f"sqlite:///{tmp_path / 'crm.db'}" if backend == "sqlite" else request.getfixturevalue("postgres_url")
    prefix = f"t{uuid.uuid4().hex[:10]}_"
    store = PlayStore(uri, table_prefix=prefix)
    try:
        first = [draw(f"a{i}", "cross_sell", DAY, 0.5, 1, 90) for i in range(30)]
        now = dt.datetime(2026, 4, 1, tzinfo=dt.UTC)
        assert store.save(first, now) == 30
        flipped = [draw(a.account_id, a.play, a.episode_start, 0.5, 2, 90) for a in first]  # another seed: other arms
        store.save(flipped, now)  # a replica racing with a different draw cannot change what is stored
        again = {a.account_id: a for a in store.covering(DAY + dt.timedelta(days=10))}
        assert {k: v.arm for k, v in again.items()} == {a.account_id: a.arm for a in first}
        assert store.covering(DAY + dt.timedelta(days=90)) == []
        one = next(a for a in first if a.held_out)
        assert [a.play for a in store.control_groups(one.account_id, DAY)] == ["cross_sell"]
        frame = store.frame()
        assert len(frame) == 30 and set(frame["arm"]) <= {HOLD_OUT, RECOMMEND}
        assert np.isclose(frame["share"], 0.5).all() and (frame["seed"] == 1).all()
    finally:
        if backend == "postgresql":
            with store.engine.begin() as conn:
                conn.exec_driver_sql(f'DROP TABLE IF EXISTS "{prefix}play_assignments"')
        store.close()


def test_frame_columns_are_dates(tmp_path) -> None:  # noqa: ANN001
    store = PlayStore(f"sqlite:///{tmp_path / 'crm.db'}")
    try:
        assert list(store.frame().columns)[:3] == ["account_id", "play", "episode_start"]
        assert pd.api.types.is_datetime64_any_dtype(store.frame()["episode_start"])
    finally:
        store.close()
