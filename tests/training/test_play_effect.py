"""Play effects: intention to treat between recommended and held-out accounts, never done against not done."""

from __future__ import annotations

import datetime as dt
import math

import numpy as np
import pandas as pd
import pytest

from training.play_effect import (
    MEASURED,
    TOO_EARLY,
    done_flags,
    effects_frame,
    months_to_measure,
    play_effects,
    power_line,
)


def _episodes(n: int, share: float, rate_rec: float, rate_hold: float, seed: int, play: str = "cross_sell",
              confounded_done: bool = False) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    held = rng.random(n) < share
    ready = rng.random(n) < 0.5  # accounts that would expand anyway, more often
    p = np.where(held, rate_hold, rate_rec) + np.where(ready, 0.2, -0.2) * 0.5
    y = (rng.random(n) < p).astype(float)
    done = (~held) & (ready if confounded_done else rng.random(n) < 0.6)
    return pd.DataFrame({
        "account_id": [f"a{i}" for i in range(n)], "play": play,
        "episode_start": pd.Timestamp("2026-01-31") + pd.to_timedelta(rng.integers(0, 6, n) * 30, unit="D"),
        "arm": np.where(held, "hold_out", "recommend"), "expanded": y, "churned": 0.0,
        "expansion_mrr": y * 100.0, "done": done})


def test_a_large_effect_is_measured_and_its_interval_excludes_zero() -> None:
    # 4,000 episodes, half held out: the difference's sd is about 0.015, so a 0.25 effect is 16 sd from 0
    (e,) = play_effects(_episodes(4000, 0.5, 0.45, 0.20, seed=1), replicates=300)
    assert e.status == MEASURED and e.outcome == "expanded"
    assert e.effect.low > 0.15 and e.effect.high < 0.35 and e.effect.low <= e.effect.value <= e.effect.high
    assert e.recommended + e.held_out == 4000 and e.mrr_effect.low > 0
    assert math.isclose(e.effect.value, e.rate_recommended - e.rate_held_out)
    assert 0.55 < e.done_share < 0.65


def test_done_against_not_done_is_not_the_effect() -> None:
    # no effect at all, but CSMs run the play on the accounts that were going to expand anyway
    frame = _episodes(4000, 0.5, 0.30, 0.30, seed=2, confounded_done=True)
    (e,) = play_effects(frame, replicates=300)
    rec = frame[frame["arm"] == "recommend"]
    naive = rec.loc[rec["done"], "expanded"].mean() - rec.loc[~rec["done"], "expanded"].mean()
    assert naive > 0.15  # what a done-vs-not-done report would claim
    assert e.effect.low < 0 < e.effect.high  # the holdout sees no effect (seeded data: not flaky)


def test_below_the_minimum_per_arm_it_is_too_early_and_open_windows_do_not_count() -> None:
    frame = _episodes(300, 0.05, 0.4, 0.1, seed=3)
    frame.loc[frame.index[:100], "expanded"] = np.nan  # windows still open
    (e,) = play_effects(frame, min_per_arm=30, replicates=100)
    assert e.held_out < 30 and e.status == TOO_EARLY and e.effect is None
    assert e.recommended + e.held_out == 200
    row = effects_frame([e]).iloc[0]
    assert row["status"] == TOO_EARLY and math.isnan(row["effect"])


def test_the_power_line_follows_the_normal_approximation() -> None:
    # 12 % base, +5 points, 10 % held out: (1.645 + 0.842)^2 x (0.1056 / 0.1 + 0.1411 / 0.9) / 0.05^2 = 2 995 accounts
    assert months_to_measure(40, 0.12, 0.05, 0.10) == pytest.approx(2995 / 40, rel=0.01)
    assert months_to_measure(40, 0.12, 0.05, 0.5) < months_to_measure(40, 0.12, 0.05, 0.10)
    assert months_to_measure(0, 0.12, 0.05, 0.1) == math.inf
    assert "with 40 eligible accounts a month and a 12 % base rate, a 5-point effect is measurable after about 75" \
        in power_line(40, 0.12, 0.10)


def test_before_any_outcome_window_closes_there_is_no_rate_and_no_power_figure() -> None:
    frame = _episodes(120, 0.2, 0.3, 0.1, seed=5)
    frame["expanded"] = np.nan  # every window still open
    (e,) = play_effects(frame, replicates=50)
    assert e.status == TOO_EARLY and e.recommended == e.held_out == 0
    assert math.isnan(e.rate_recommended) and math.isnan(e.rate_held_out)
    assert e.power.endswith("is known once the first outcome windows close (no base rate yet)")
    assert "0 % base rate" not in e.power and "after about" not in e.power

    from serving.web.formats import DASH, pct  # as `expansion plays effect` and the leadership page write a rate

    assert (pct(100 * e.rate_recommended, 1), pct(100 * 0.123, 1)) == (DASH, "12.3 %")


def test_a_risk_play_is_judged_on_churn_and_bad_arms_are_refused() -> None:
    frame = _episodes(400, 0.5, 0.3, 0.3, seed=4, play="success_plan_review")
    (e,) = play_effects(frame, replicates=50)
    assert e.outcome == "churned"
    with pytest.raises(ValueError, match="arm must be"):
        play_effects(frame.assign(arm="maybe"))
    with pytest.raises(ValueError, match="column.*churned"):
        play_effects(frame.drop(columns=["churned"]))


def test_done_flags_count_plays_logged_within_the_episode_only() -> None:
    episodes = pd.DataFrame({"account_id": ["a", "a", "b"], "play": ["cross_sell"] * 3,
                             "episode_start": pd.to_datetime(["2026-01-01", "2026-05-01", "2026-01-01"]),
                             "episode_end": pd.to_datetime(["2026-04-01", "2026-08-01", "2026-04-01"])})
    log = pd.DataFrame({"account_id": ["a", "b", "a"], "play": ["cross_sell"] * 3, "outcome": ["won", "planned", "lost"],
                        "logged_at": pd.to_datetime([dt.datetime(2026, 2, 3, 9), dt.datetime(2026, 2, 3, 9),
                                                     dt.datetime(2026, 9, 1)], utc=True)})
    assert done_flags(episodes, log).tolist() == [True, False, False]


def test_renewal_is_read_only_where_a_renewal_fell_due_and_its_difference_has_an_interval() -> None:
    rng = np.random.default_rng(70)  # not the episodes' seed: its first draw made the arms
    frame = _episodes(3000, 0.5, 0.3, 0.3, seed=7)
    due = rng.random(len(frame)) < 0.4  # a renewal fell due in the window for 40 % of episodes
    held = frame["arm"].eq("hold_out").to_numpy(dtype=bool)
    stayed = rng.random(len(frame)) < np.where(held, 0.70, 0.85)  # the play keeps 15 points more
    frame["renewed"] = np.where(due, stayed.astype(float), np.nan)
    (e,) = play_effects(frame, replicates=300)
    r = e.renewal
    assert r.recommended == int((due & ~held).sum()) and r.held_out == int((due & held).sum())
    assert math.isclose(r.rate_recommended, stayed[due & ~held].mean())
    assert math.isclose(r.effect.value, stayed[due & ~held].mean() - stayed[due & held].mean())
    # about 600 per arm: sd of the difference about 0.024, so 0.15 lies ~6 sd from 0
    assert r.effect.low > 0.05 and r.effect.low < 0.15 < r.effect.high
    row = effects_frame([e]).iloc[0]
    assert row["renewal_recommended"] == r.recommended and row["renewal_effect_low"] == r.effect.low
    few = frame.assign(renewed=np.where(due & (rng.random(len(frame)) < 0.02), frame["renewed"], np.nan))
    (e2,) = play_effects(few, replicates=50)
    assert e2.renewal.effect is None and e2.status == MEASURED  # too few renewals; the primary outcome still read
