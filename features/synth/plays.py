"""Plays with known effects in a generated company: who is eligible, who is held out, who is treated.

A switch of the generator (``generate(..., plays=PlayEffects())``). Every simulated month of
the window, an account whose latent state meets a play's premise and has no open episode of
it starts one (the scoring run at the end of the previous month): the product's own
assignment (:func:`features.play_assignment.draw`, same hash, share and seed) puts it in
``recommend`` or ``hold_out``. A recommended account is treated (its CSM runs the play) with
probability ``compliance``; a treated account's hazards move for the episode's months:

- ``upgrade_conversation`` (usage at 70 % of the plan limit or more, a higher tier exists): the upgrade logit
  rises by ``upgrade_lift``, more the nearer the account is to its limit;
- ``seat_expansion`` (licensed seats nearly all wanted): the seat-expansion logit rises by ``seat_lift``;
- ``success_plan_review`` (poor health): the churn logit falls by ``save_mid`` for mid-risk
  accounts and only ``save_high`` for the highest-risk ones (a save play helps the middle most);
- ``cross_sell`` (an add-on free, a sponsor in place): a placebo, no effect at all.

Eligibility is read from the latent state, not from the scorer (a simplification: an account
can be eligible for several plays at once here). The draws of this module come from a stream
of their own and are the same size every month, and with plays on the lifecycle draws a
fixed-size cross-sell pick, so the same seed with one play switched ``off`` (same eligibility
rules and draws, that play without effect) gives the company each account would have been
without that play: a play's *true* effect is read as the difference between the two companies
for its recommended episodes (``benchmarks/bench_play_effects.py``).
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

import numpy as np
import pandas as pd

from features.play_assignment import HOLD_OUT, RECOMMEND, draw

STREAM_PLAYS = 7  # a block's random stream of its own (features.synth.timeline numbers the others)
PLAY_TABLE = "play_assignments"  # written beside the contract tables; not one of them
PLAYS = ("upgrade_conversation", "seat_expansion", "success_plan_review", "cross_sell")
PLACEBO = "cross_sell"
NEAR_LIMIT = 0.7  # usage over the plan quota from which the upgrade conversation is eligible


@dataclass(frozen=True)
class PlayEffects:
    """The generator's plays: holdout share and seed (as the product's settings), compliance, effect sizes."""

    share: float = 0.10
    seed: int = 3617
    compliance: float = 0.7
    episode_months: int = 3
    episode_days: int = 90
    upgrade_lift: float = 1.8
    seat_lift: float = 1.5
    save_mid: float = 1.5
    save_high: float = 0.4
    scale: float = 1.0  # 0: the same plays and draws with no effect (the company without them)
    off: tuple[str, ...] = ()  # plays whose effect is switched off (the company without that play alone)

    def __post_init__(self) -> None:
        if not 0.0 < self.share < 1.0:
            raise ValueError(f"plays: share must be > 0 and < 1, got {self.share}")
        if not 0.0 <= self.compliance <= 1.0:
            raise ValueError(f"plays: compliance must be in [0, 1], got {self.compliance}")


class PlayPolicy:
    """One block's play episodes, month by month; ``lifts`` is called once per simulated month."""

    def __init__(self, cfg: PlayEffects, account_id: np.ndarray, event_day: np.ndarray, first_month: int,
                 rng: np.random.Generator) -> None:
        self.cfg, self.ids, self.event_day, self.first_month, self.rng = cfg, account_id, event_day, first_month, rng
        n = len(account_id)
        self.start = {p: np.full(n, -10_000) for p in PLAYS}
        self.treated = {p: np.zeros(n, bool) for p in PLAYS}
        self.rows: list[tuple] = []

    def _episodes(self, play: str, t: int, eligible: np.ndarray) -> np.ndarray:
        """Start episodes where eligible and none is open; returns where the play acts this month (treated, open)."""
        start, treated = self.start[play], self.treated[play]
        follows = self.rng.random(len(eligible)) < self.cfg.compliance  # drawn every month: fixed-size stream
        open_ = t < start + self.cfg.episode_months
        new = np.flatnonzero(eligible & ~open_) if t >= self.first_month else np.array([], dtype=int)
        for i in new:
            day = (self.event_day[i, t] - np.timedelta64(1, "D")).astype(dt.date)
            a = draw(str(self.ids[i]), play, day, self.cfg.share, self.cfg.seed, self.cfg.episode_days)
            start[i], treated[i] = t, a.arm == RECOMMEND and bool(follows[i])
            self.rows.append((a.account_id, play, a.episode_start, a.episode_end, a.arm, a.share, a.seed,
                              bool(treated[i])))
        return treated & (t < start + self.cfg.episode_months)

    def lifts(self, t: int, can_move: np.ndarray, quota_prev: np.ndarray, core_tier: np.ndarray,
              seat_pressure: np.ndarray, room: np.ndarray, h_bar: np.ndarray, free: np.ndarray,
              exec_prev: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(upgrade, seat, churn) logit shifts for month ``t``."""
        k = {p: 0.0 if p in self.cfg.off else self.cfg.scale for p in PLAYS}
        up = self._episodes("upgrade_conversation", t, can_move & (quota_prev >= NEAR_LIMIT) & (core_tier < 2))
        seat = self._episodes("seat_expansion", t, can_move & (seat_pressure >= 0.9) & room)
        save = self._episodes("success_plan_review", t, can_move & (h_bar < -0.5))
        self._episodes(PLACEBO, t, can_move & free & exec_prev)
        nearness = np.clip((quota_prev - NEAR_LIMIT) / 0.4, 0.5, 1.0)
        churn = np.where(h_bar < -1.5, self.cfg.save_high, self.cfg.save_mid)
        return (k["upgrade_conversation"] * self.cfg.upgrade_lift * nearness * up,
                k["seat_expansion"] * self.cfg.seat_lift * seat, -k["success_plan_review"] * churn * save)

    def table(self) -> pd.DataFrame:
        """Every episode: ``account_id, play, episode_start, episode_end, arm, share, seed, done``."""
        columns = ["account_id", "play", "episode_start", "episode_end", "arm", "share", "seed", "done"]
        out = pd.DataFrame(self.rows, columns=columns)
        for c in ("episode_start", "episode_end"):
            out[c] = pd.to_datetime(out[c])
        return out


__all__ = ["PLAYS", "PLACEBO", "PlayEffects", "PlayPolicy", "HOLD_OUT", "RECOMMEND"]
