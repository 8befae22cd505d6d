"""Ranking a play's eligible accounts by what the play is expected to add, judged against ranking by readiness.

A two-model ("T") learner: one LightGBM model of the outcome on recommended episodes, one on
held-out episodes, both on the account's features at the episode's start; the uplift is the
difference of their predictions. Rankings are compared by their **Qini coefficient** on later
(held-out) months: walk down the ranking, and at each depth count the outcomes among
recommended accounts minus those among held-out accounts scaled to the same number of
accounts; the coefficient is the mean height of that curve above the straight line of a random
ranking, per episode. An uplift ranking may replace readiness only when the paired,
account-level interval of its Qini gain over readiness lies above 0 (:func:`compare`).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from features.play_assignment import HOLD_OUT, RECOMMEND
from training.bootstrap import CONFIDENCE, SEED, Interval, cluster_resamples, interval
from training.models import fit_booster, prepare

ROUNDS = 100


def qini_coefficient(y: np.ndarray, treated: np.ndarray, score: np.ndarray) -> float:
    """Mean height of the Qini curve above the random line, per episode (0: no better than chance)."""
    y, treated = np.asarray(y, dtype=float), np.asarray(treated, dtype=bool)
    order = np.argsort(-np.asarray(score, dtype=float), kind="stable")
    y, treated = y[order], treated[order]
    n_t, n_c = np.cumsum(treated), np.cumsum(~treated)
    y_t, y_c = np.cumsum(y * treated), np.cumsum(y * ~treated)
    curve = y_t - np.divide(y_c * n_t, n_c, out=np.zeros(len(y)), where=n_c > 0)
    line = curve[-1] * np.arange(1, len(y) + 1) / len(y)
    return float((curve - line).mean() / len(y)) if len(y) else float("nan")


def two_model_uplift(train: pd.DataFrame, test: pd.DataFrame, label: str, features: list[str],
                     categorical: list[str], rounds: int = ROUNDS) -> np.ndarray:
    """Predicted outcome if recommended minus if held out, for each row of ``test`` (models fitted on ``train``)."""
    arms = train["arm"] == RECOMMEND
    predictions = []
    for part in (train[arms], train[~arms]):
        booster, levels = fit_booster("uplift", part, label, features, categorical, rounds=rounds)
        predictions.append(booster.predict(prepare(test, features, levels)))
    return predictions[0] - predictions[1]


@dataclass(frozen=True)
class RankingComparison:
    """Qini of the uplift ranking and of readiness on the same episodes, the paired gain, and which one is in force."""

    episodes: int
    uplift: Interval
    readiness: Interval
    gain: Interval

    @property
    def uplift_in_force(self) -> bool:
        return self.gain.low > 0


def compare(test: pd.DataFrame, label: str, uplift: np.ndarray, readiness: np.ndarray, *, replicates: int = 500,
            confidence: float = CONFIDENCE, seed: int = SEED) -> RankingComparison:
    """Both rankings' Qini on ``test`` (``account_id``, ``arm``, ``label``) with account-level paired intervals."""
    y, treated = test[label].to_numpy(dtype=float), (test["arm"] == RECOMMEND).to_numpy()
    u, r = np.asarray(uplift, dtype=float), np.asarray(readiness, dtype=float)
    draws = np.array([(qini_coefficient(y[i], treated[i], u[i]), qini_coefficient(y[i], treated[i], r[i]))
                      for i in cluster_resamples(test["account_id"].astype(str).to_numpy(), replicates, seed)])
    point_u, point_r = qini_coefficient(y, treated, u), qini_coefficient(y, treated, r)
    return RankingComparison(len(test), interval(point_u, draws[:, 0], confidence),
                             interval(point_r, draws[:, 1], confidence),
                             interval(point_u - point_r, draws[:, 0] - draws[:, 1], confidence))


READINESS, UPLIFT = "readiness", "uplift"
#: the later share of a play's episode start months that tests the uplift ranking (the earlier ones train it)
TEST_SHARE = 1 / 3


def _gain(c: RankingComparison) -> str:
    return f"{c.gain.value:+.4f} [{c.gain.low:+.4f}, {c.gain.high:+.4f}]"


@dataclass(frozen=True)
class RankingDecision:
    """Which ranking of a play's eligible accounts the evidence supports, and why, in one line."""

    play: str
    supported: str
    why: str
    comparison: RankingComparison | None = None


def decide(play: str, comparison: RankingComparison | None, counts: dict[str, int], min_per_arm: int) -> RankingDecision:
    """Uplift only when every part (``counts``: episodes with a read outcome per part and arm, e.g. ``train
    recommend``) holds ``min_per_arm`` and the paired Qini gain's interval lies above 0; readiness otherwise."""
    short = {k: n for k, n in counts.items() if n < min_per_arm}
    if short or comparison is None:
        said = ", ".join(f"{n:,} {k}" for k, n in counts.items())
        return RankingDecision(play, READINESS, f"readiness: too few outcomes ({said}; {min_per_arm} needed in each)")
    if comparison.uplift_in_force:
        return RankingDecision(play, UPLIFT, f"uplift: the uplift model's Qini gain {_gain(comparison)} is above 0 "
                                             "(the scoring run ranks this play's accounts by their expected gain)",
                               comparison)
    return RankingDecision(play, READINESS,
                           f"readiness: the uplift model's Qini gain {_gain(comparison)} is not above 0", comparison)


def split(episodes: pd.DataFrame, label: str) -> tuple[pd.DataFrame, pd.DataFrame, dict[str, int]]:
    """The episodes with ``label`` read, split by start month: the earlier ones train, the last ``TEST_SHARE`` of
    the months test; and the count of each part's arms (``training recommend`` ... ``test hold_out``)."""
    read = episodes[episodes[label].notna()]
    months = pd.to_datetime(read["episode_start"]).dt.to_period("M")
    ordered = sorted(months.unique())
    later = np.zeros(len(read), dtype=bool)
    if len(ordered) > 1:
        later = (months >= ordered[max(1, int(len(ordered) * (1 - TEST_SHARE)))]).to_numpy(dtype=bool)
    train, test = read[~later], read[later]
    counts = {f"{part} {arm}": int((frame["arm"] == arm).sum())
              for part, frame in (("training", train), ("test", test)) for arm in (RECOMMEND, HOLD_OUT)}
    return train, test, counts


def ranking_decision(play: str, episodes: pd.DataFrame, label: str, features: list[str], categorical: list[str],
                     readiness_score: str, *, min_per_arm: int, replicates: int = 500,
                     seed: int = SEED) -> RankingDecision:
    """Train the two-model learner on a play's earlier episodes (``episode_start``, ``arm``, ``label`` read,
    ``features``), compare it with ``readiness_score`` on the later ones (:func:`compare`) and :func:`decide`."""
    train, test, counts = split(episodes, label)
    if min(counts.values()) < min_per_arm:
        return decide(play, None, counts, min_per_arm)
    uplift = two_model_uplift(train, test, label, features, categorical)
    return decide(play, compare(test, label, uplift, test[readiness_score].to_numpy(), replicates=replicates,
                                seed=seed), counts, min_per_arm)
