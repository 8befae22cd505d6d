"""What each play caused: recommended against held-out accounts (intention to treat), with intervals.

Every eligible account was assigned by a hash to ``recommend`` or ``hold_out``
(:mod:`features.play_assignment`), so the two groups differ only by chance and by the play.
The effect of a play is the difference between the groups' outcome rates (and expansion
MRR per episode) over the outcome window, **whatever the CSM then did**: comparing accounts
where the play was logged as done with those where it was not would mix the play's effect
with the reasons a CSM chose to run it (the readiest accounts get called first), so no
effect is ever read from that comparison. The share of recommended accounts where the play
was logged as done is reported beside the effect, as context.

Intervals are account-level bootstrap intervals (:mod:`training.bootstrap`: an account with
several episodes is drawn whole). Below ``min_per_arm`` read episodes in either group the
play is "too early to tell". The power line says how long a given effect takes to measure.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import pandas as pd

from features.play_assignment import HOLD_OUT, RECOMMEND
from features.reason_catalog import PLAY_BY_NAME
from training.bootstrap import CONFIDENCE, REPLICATES, SEED, Interval, cluster_resamples, interval

TOO_EARLY, MEASURED = "too early to tell", "measured"
#: z of a two-sided 90 % interval and of 80 % power: the effect is "measurable" when its interval excludes 0
#: four times in five.
Z_INTERVAL, Z_POWER = 1.6449, 0.8416
POWER_EFFECT = 0.05  # the effect size the power line speaks of (5 points)


def primary_outcome(play: str) -> str:
    """The outcome a play aims at: churn for risk plays, expansion for the others."""
    found = PLAY_BY_NAME.get(play)
    return "churned" if found is not None and found.effect == "churn_risk" else "expanded"


def done_flags(episodes: pd.DataFrame, log: pd.DataFrame) -> pd.Series:
    """Per episode, True when the play was logged on the account as done (any outcome but ``planned``)
    within the episode ``[episode_start, episode_end)``; ``log`` is ``WebStore.log_frame()``."""
    if not len(log) or not len(episodes):
        return pd.Series(False, index=episodes.index)
    e = episodes[["account_id", "play", "episode_start", "episode_end"]].copy()
    e["_row"] = np.arange(len(e))
    done = log.loc[log["outcome"] != "planned", ["account_id", "play", "logged_at"]].copy()
    done["day"] = pd.to_datetime(done["logged_at"], utc=True).dt.tz_localize(None).dt.normalize()
    j = e.merge(done, on=["account_id", "play"])
    hit = j[(j["day"] >= pd.to_datetime(j["episode_start"])) & (j["day"] < pd.to_datetime(j["episode_end"]))]
    flags = np.zeros(len(e), dtype=bool)
    flags[hit["_row"].unique()] = True
    return pd.Series(flags, index=episodes.index)


@dataclass(frozen=True)
class Renewal:
    """The renewal rate among episodes whose renewal fell due in the window, recommended minus held out."""

    recommended: int
    held_out: int
    rate_recommended: float
    rate_held_out: float
    effect: Interval | None


def renewal_effect(read: pd.DataFrame, *, min_per_arm: int, replicates: int, confidence: float,
                   seed: int) -> Renewal:
    """The ``renewed`` rate difference over the episodes where it is known (a renewal fell due in the window)."""
    due = read[read["renewed"].notna()].reset_index(drop=True) if "renewed" in read.columns else read.iloc[:0]
    rec = (due["arm"] == RECOMMEND).to_numpy()
    y = due["renewed"].to_numpy(dtype=float) if len(due) else np.zeros(0)
    n_rec, n_hold = int(rec.sum()), int((~rec).sum())
    effect = None
    if min(n_rec, n_hold) >= min_per_arm:
        draws = np.array([_diff(y[i], rec[i])
                          for i in cluster_resamples(due["account_id"].astype(str).to_numpy(), replicates, seed)])
        effect = interval(_diff(y, rec), draws, confidence)
    return Renewal(n_rec, n_hold, float(y[rec].mean()) if n_rec else float("nan"),
                   float(y[~rec].mean()) if n_hold else float("nan"), effect)


@dataclass(frozen=True)
class PlayEffect:
    """One play's measured effect on its primary outcome and on expansion MRR per episode."""

    play: str
    outcome: str
    recommended: int
    held_out: int
    accounts: int
    rate_recommended: float
    rate_held_out: float
    effect: Interval | None
    mrr_effect: Interval | None
    done_share: float
    status: str
    power: str
    renewal: Renewal | None = None


    def as_dict(self) -> dict:
        def ends(iv: Interval | None, name: str) -> dict:
            nan = float("nan")
            return {name: iv.value if iv else nan, f"{name}_low": iv.low if iv else nan,
                    f"{name}_high": iv.high if iv else nan}

        return {"play": self.play, "outcome": self.outcome, "recommended": self.recommended, "held_out": self.held_out,
                "accounts": self.accounts, "rate_recommended": self.rate_recommended,
                "rate_held_out": self.rate_held_out, **ends(self.effect, "effect"),
                **ends(self.mrr_effect, "mrr_effect"), "done_share": self.done_share, "status": self.status,
                "power": self.power, **self._renewal_dict(ends)}

    def _renewal_dict(self, ends) -> dict:
        r = self.renewal or Renewal(0, 0, float("nan"), float("nan"), None)
        return {"renewal_recommended": r.recommended, "renewal_held_out": r.held_out,
                "renewal_rate_recommended": r.rate_recommended, "renewal_rate_held_out": r.rate_held_out,
                **ends(r.effect, "renewal_effect")}


def months_to_measure(per_month: float, base_rate: float, effect: float, share: float) -> float:
    """Months of eligible accounts until ``effect`` (absolute, on a ``base_rate``) is measurable with a holdout of
    ``share``: the 90 % interval excludes 0 with 80 % power (normal approximation; the outcome window comes on top)."""
    if per_month <= 0 or not 0 < share < 1 or effect == 0:
        return math.inf
    treated = min(max(base_rate + effect, 1e-6), 1 - 1e-6)
    base = min(max(base_rate, 1e-6), 1 - 1e-6)
    variance = base * (1 - base) / share + treated * (1 - treated) / (1 - share)
    return (Z_INTERVAL + Z_POWER) ** 2 * variance / effect**2 / per_month


def power_line(per_month: float, base_rate: float, share: float, effect: float = POWER_EFFECT) -> str:
    """How long a ``effect``-point difference takes to measure; with no base rate yet (``base_rate`` NaN), says so."""
    if not math.isfinite(base_rate):
        return (f"with {per_month:.0f} eligible accounts a month, how long a {100 * effect:.0f}-point effect takes to "
                "measure is known once the first outcome windows close (no base rate yet)")
    months = months_to_measure(per_month, base_rate, effect, share)
    after = "never at this rate" if not math.isfinite(months) else f"after about {math.ceil(months)} month(s)"
    return (f"with {per_month:.0f} eligible accounts a month and a {100 * base_rate:.0f} % base rate, a "
            f"{100 * effect:.0f}-point effect is measurable {after} (plus the outcome window)")


def _diff(y: np.ndarray, rec: np.ndarray) -> float:
    a, b = y[rec], y[~rec]
    return float(a.mean() - b.mean()) if len(a) and len(b) else float("nan")


def play_effects(episodes: pd.DataFrame, *, min_per_arm: int = 30, replicates: int = REPLICATES,
                 confidence: float = CONFIDENCE, seed: int = SEED) -> list[PlayEffect]:
    """Each play's effect from ``episodes``: ``account_id, play, episode_start, arm`` and the outcome columns of
    :func:`features.play_outcomes.episode_outcomes` (null while the window is open), plus ``done`` when known.
    ``renewed`` is optional (without it no renewal is read)."""
    need = {"account_id", "play", "episode_start", "arm", "expanded", "churned", "expansion_mrr"}
    missing = sorted(need - set(episodes.columns))
    if missing:
        raise ValueError(f"play episodes: column(s) {', '.join(missing)} required")
    bad = sorted(set(episodes["arm"]) - {RECOMMEND, HOLD_OUT})
    if bad:
        raise ValueError(f"play episodes: arm must be {RECOMMEND} or {HOLD_OUT}, got {bad}")
    out = []
    for play, group in episodes.groupby("play", sort=True):
        outcome = primary_outcome(str(play))
        months = pd.to_datetime(group["episode_start"]).dt.to_period("M")
        per_month = len(group) / max(1, months.nunique())
        share = float((group["arm"] == HOLD_OUT).mean())
        read = group[group[outcome].notna()].reset_index(drop=True)
        rec = (read["arm"] == RECOMMEND).to_numpy()
        y = read[outcome].to_numpy(dtype=float)
        mrr = read["expansion_mrr"].to_numpy(dtype=float)
        done = group.loc[group["arm"] == RECOMMEND, "done"] if "done" in group.columns else pd.Series([], dtype=bool)
        n_rec, n_hold = int(rec.sum()), int((~rec).sum())
        base = float(y[~rec].mean()) if n_hold else (float(y.mean()) if len(y) else float("nan"))
        effect = mrr_effect = None
        if min(n_rec, n_hold) >= min_per_arm:
            draws = np.array([(_diff(y[i], rec[i]), _diff(mrr[i], rec[i]))
                              for i in cluster_resamples(read["account_id"].astype(str).to_numpy(), replicates, seed)])
            effect = interval(_diff(y, rec), draws[:, 0], confidence)
            mrr_effect = interval(_diff(mrr, rec), draws[:, 1], confidence)
        out.append(PlayEffect(
            play=str(play), outcome=outcome, recommended=n_rec, held_out=n_hold,
            accounts=int(read["account_id"].nunique()),
            rate_recommended=float(y[rec].mean()) if n_rec else float("nan"),
            rate_held_out=float(y[~rec].mean()) if n_hold else float("nan"),
            effect=effect, mrr_effect=mrr_effect,
            done_share=float(done.mean()) if len(done) else float("nan"),
            status=MEASURED if effect is not None else TOO_EARLY,
            power=power_line(per_month, base, share),
            renewal=renewal_effect(group, min_per_arm=min_per_arm, replicates=replicates, confidence=confidence,
                                   seed=seed),
        ))
    return out


def effects_frame(effects: list[PlayEffect]) -> pd.DataFrame:
    """The effects as one row per play (``PlayEffect.as_dict``)."""
    return pd.DataFrame([e.as_dict() for e in effects])
