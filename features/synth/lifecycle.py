"""Month-by-month life of each account: latent state, usage pressure and revenue outcomes.

Two latent random walks per account drive everything: ``momentum`` (team growth,
appetite) and ``health`` (satisfaction, relationship). Observable signals in a month
reflect that month's latents; outcome hazards read the latents of the previous one to
three months, so signals lead outcomes by 30-90 days without deciding them. Two
mechanisms are explicit: seat expansion follows user demand pressing on licensed
seats, and plan upgrades follow usage pressing on the plan's event quota (and trials
of gated features).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np

from features.synth.accounts import AccountBlock
from features.synth.catalog import ADDONS, CORE
from features.synth.timeline import Timeline

if TYPE_CHECKING:
    from features.synth.plays import PlayPolicy

CHURN_BASE = np.array([-3.6, -4.6, -5.6])  # monthly logit at neutral health: smb, mid_market, enterprise
CONTRACTION_BASE = np.array([-5.0, -4.8, -4.6])
SEAT_BASE, UPGRADE_BASE, CROSS_SELL_BASE = -5.6, -4.0, -5.8
REACTIVATION_MONTHLY = 0.004
SEAT_CAP = np.array([120.0, 600.0, 5000.0])  # a customer outgrowing its segment is a different customer
EVENTS_PER_USER = 300.0
CORE_PRICE = np.array(CORE.price_per_seat)
CORE_QUOTA = np.array([q if q is not None else np.nan for q in CORE.quota_per_seat])
ADDON_PRICE = np.array([a.price_per_seat for a in ADDONS])  # [addon, tier]
KIND_SEATS, KIND_UPGRADE, KIND_CROSS_SELL, KIND_PRICE = 1, 2, 3, 4


def sigmoid(x: np.ndarray) -> np.ndarray:
    return 1.0 / (1.0 + np.exp(-x))


def tenure_shift(tenure_months: np.ndarray) -> np.ndarray:
    """Expansion logit by tenure: customers discover first, expand most in months 8-16, then settle."""
    return np.select(
        [tenure_months < 4, tenure_months < 8, tenure_months <= 16, tenure_months <= 24],
        [-1.6, -0.5, 0.45, -0.1],
        -0.45,
    )


def quota_utilization(events: np.ndarray, limit: np.ndarray) -> np.ndarray:
    """Events over the plan quota; 0 where the plan is unlimited (NaN limit) or nothing is licensed."""
    ok = np.isfinite(limit) & (limit > 0)
    return np.where(ok, events / np.where(ok, limit, 1.0), 0.0)


@dataclass
class History:
    """Per account and simulated month ([n, months]) state after that month's changes."""

    active: np.ndarray
    seats: np.ndarray
    core_tier: np.ndarray
    addon_tier: np.ndarray  # [n, months, addons], -1 = not owned
    addon_seats: np.ndarray
    price_factor: np.ndarray
    active_users: np.ndarray
    events: np.ndarray  # expected monthly events
    usage_limit: np.ndarray  # NaN = unlimited
    momentum: np.ndarray
    health: np.ndarray
    trial: np.ndarray  # using a feature of the next core tier
    api_on: np.ndarray
    exec_sponsor: np.ndarray
    expansion_kind: np.ndarray  # 0 none, else KIND_*


class _State:
    """Mutable current-month state of a block (vectors of length n)."""

    def __init__(self, b: AccountBlock) -> None:
        n = b.n
        self.active = np.zeros(n, bool)
        self.churn_month = np.full(n, -1)
        self.seats = b.seats.astype(float)
        self.core_tier = b.core_tier.copy()
        self.addon_tier = b.addon_tier.copy()
        self.addon_seats = np.where(b.addon_tier >= 0, np.ceil(b.seats[:, None] * 0.6), 0.0)
        self.price_factor = b.price_factor.copy()
        self.demand = b.seats * 0.8
        self.level = np.zeros(n)
        self.api_on = np.zeros(n, bool)
        self.sponsor = np.ones(n, bool)


def simulate(b: AccountBlock, timeline: Timeline, rng: np.random.Generator,
             reactivation_monthly: float = REACTIVATION_MONTHLY, plays: PlayPolicy | None = None) -> History:
    """Simulate every month of the block's accounts; pre-window accounts survive to the window (they are observed).

    ``plays``: plays with known effects move the hazards of treated accounts (:mod:`features.synth.plays`)."""
    n, T = b.n, timeline.total_months
    s = _State(b)
    first_demand = b.seats * rng.uniform(0.65, 0.95, n)
    h = _empty_history(n, T)
    m_now, h_now = b.momentum_mean.copy(), b.health_mean + rng.normal(0, 0.3, n)
    event_day = timeline.anniversary_dates(b.day)
    exp_shift, churn_shift = b.expansion_shift(), b.churn_shift()
    for t in range(T):
        m_now = b.momentum_mean + 0.8 * (m_now - b.momentum_mean) + rng.normal(0, 0.5, n)
        h_now = b.health_mean + 0.85 * (h_now - b.health_mean) + rng.normal(0, 0.4, n)
        lo = max(0, t - 3)
        m_bar = h.momentum[:, lo:t].mean(axis=1) if t else m_now
        h_bar = h.health[:, lo:t].mean(axis=1) if t else h_now
        starting = b.start_month == t
        s.active |= starting
        s.demand = np.where(starting, first_demand, s.demand)
        s.level = np.where(starting, 0.0, s.level)
        can_move = s.active & ~starting & (event_day[:, t] <= timeline.as_of64)
        kind = _outcomes(b, s, h, t, timeline, rng, can_move, m_bar, h_bar, exp_shift, churn_shift, plays)
        _reactivate(s, t, timeline, rng, event_day, reactivation_monthly)
        _usage_state(b, s, rng, m_now, h_now, n)
        _record(h, s, t, m_now, h_now, kind, rng, b)
    return h


def _empty_history(n: int, T: int) -> History:
    f = lambda: np.zeros((n, T))  # noqa: E731
    return History(
        active=np.zeros((n, T), bool), seats=f(), core_tier=np.zeros((n, T), np.int64),
        addon_tier=np.full((n, T, len(ADDONS)), -1, np.int64), addon_seats=np.zeros((n, T, len(ADDONS))),
        price_factor=f(), active_users=f(), events=f(), usage_limit=f(), momentum=f(), health=f(),
        trial=np.zeros((n, T), bool), api_on=np.zeros((n, T), bool), exec_sponsor=np.zeros((n, T), bool),
        expansion_kind=np.zeros((n, T), np.int64),
    )


def _outcomes(b, s, h, t, timeline, rng, can_move, m_bar, h_bar, exp_shift, churn_shift, plays=None) -> np.ndarray:
    """Churn, contraction, expansion and renewal price uplift for month t; returns the expansion kind."""
    n = b.n
    tenure = t - b.start_month
    renewal = can_move & (tenure % 12 == 0)
    prev = max(t - 1, 0)
    seat_pressure = np.where(s.seats > 0, s.demand / s.seats, 0.0)
    quota_prev = quota_utilization(h.events[:, prev], h.usage_limit[:, prev])
    idle = h.active_users[:, prev] < 0.4 * s.seats
    churn_logit = CHURN_BASE[b.segment] + churn_shift - 1.1 * h_bar - 0.25 * m_bar + 0.7 * idle
    lift_up = lift_seat = 0.0
    if plays is not None:
        lift_up, lift_seat, lift_churn = plays.lifts(
            t, can_move, quota_prev, s.core_tier, seat_pressure, s.seats < SEAT_CAP[b.segment], h_bar,
            (s.addon_tier < 0).any(axis=1), h.exec_sponsor[:, prev])
        churn_logit = churn_logit + lift_churn
    p_month = sigmoid(churn_logit)
    p_churn = np.where(b.annual_contract, np.where(renewal, 1 - (1 - p_month) ** 12, 0.0), p_month)
    # accounts that churned before the window were never observed: only later churn counts
    in_window = timeline.anniversary_dates(b.day)[:, t] > np.datetime64(timeline.window_start, "D")
    churn = can_move & in_window & (rng.random(n) < p_churn)
    s.active &= ~churn
    s.churn_month[churn] = t
    alive = can_move & ~churn

    contr_logit = CONTRACTION_BASE[b.segment] - 1.0 * h_bar - 0.3 * m_bar + 1.2 * (seat_pressure < 0.7)
    contract = alive & (rng.random(n) < sigmoid(contr_logit))
    _contract(s, contract, seat_pressure, rng)

    base = exp_shift + tenure_shift(tenure) + 0.9 * m_bar + 0.25 * h_bar + 0.4 * s.api_on
    room = s.seats < SEAT_CAP[b.segment]
    p_seat = np.where(room, sigmoid(SEAT_BASE + base + 3.0 * np.clip(seat_pressure - 0.85, -0.5, 0.6) + lift_seat), 0.0)
    trial_prev = h.trial[:, prev]
    p_up = np.where(s.core_tier < 2, sigmoid(UPGRADE_BASE + base + 3.5 * np.clip(quota_prev - 0.8, -0.6, 0.7) + 1.0 * trial_prev + lift_up), 0.0)
    exec_prev = h.exec_sponsor[:, prev]
    free = (s.addon_tier < 0).any(axis=1)
    p_x = np.where(free, sigmoid(CROSS_SELL_BASE + base + 0.5 * exec_prev + 0.3 * h_bar), 0.0)
    p_any = 1 - (1 - p_seat) * (1 - p_up) * (1 - p_x)
    expand = alive & ~contract & (rng.random(n) < p_any)
    u = rng.random(n) * (p_seat + p_up + p_x)
    kind = np.where(u < p_seat, KIND_SEATS, np.where(u < p_seat + p_up, KIND_UPGRADE, KIND_CROSS_SELL))
    kind = np.where(expand, kind, 0)
    _expand(s, kind, b, rng, fixed_draws=plays is not None)

    uplift = renewal & ~churn & (kind == 0) & ~contract & (rng.random(n) < 0.08)
    s.price_factor = np.where(uplift, s.price_factor * rng.uniform(1.03, 1.08, n), s.price_factor)
    return np.where(uplift, KIND_PRICE, kind)


def _contract(s: _State, contract: np.ndarray, seat_pressure: np.ndarray, rng: np.random.Generator) -> None:
    n = len(contract)
    has_addon = (s.addon_tier >= 0).any(axis=1)
    u = rng.random(n)
    by_seats = contract & ((seat_pressure < 0.85) | (u < 0.4) | ((s.core_tier == 0) & ~has_addon))
    downgrade = contract & ~by_seats & (s.core_tier > 0) & ((u < 0.75) | ~has_addon)
    drop_addon = contract & ~by_seats & ~downgrade
    new_seats = np.maximum(1.0, np.floor(s.seats * rng.uniform(0.6, 0.9, n)))
    s.seats = np.where(by_seats, new_seats, s.seats)
    s.addon_seats = np.minimum(s.addon_seats, s.seats[:, None])
    s.core_tier = np.where(downgrade, s.core_tier - 1, s.core_tier)
    owned = s.addon_tier >= 0
    first_owned = np.argmax(owned, axis=1)
    rows = np.flatnonzero(drop_addon & owned.any(axis=1))
    s.addon_tier[rows, first_owned[rows]] = -1
    s.addon_seats[rows, first_owned[rows]] = 0


def _expand(s: _State, kind: np.ndarray, b: AccountBlock, rng: np.random.Generator, fixed_draws: bool = False) -> None:
    """Apply the month's expansions. ``fixed_draws``: the cross-sell pick draws for every account, so the stream
    stays aligned whatever the plays changed (the company with and without plays share every later draw)."""
    n = len(kind)
    seats = kind == KIND_SEATS
    target = np.ceil(np.maximum(s.demand, s.seats) * rng.uniform(1.25, 1.7, n))
    target = np.minimum(target, SEAT_CAP[b.segment])
    s.seats = np.where(seats, np.maximum(s.seats + 1, target), s.seats)
    s.addon_seats = np.where(seats[:, None] & (s.addon_tier >= 0), np.minimum(s.seats[:, None], s.addon_seats * 1.2).round(), s.addon_seats)
    s.core_tier = np.where(kind == KIND_UPGRADE, np.minimum(s.core_tier + 1, 2), s.core_tier)
    rows = np.flatnonzero(kind == KIND_CROSS_SELL)
    if fixed_draws:
        pick_u, tier_u, seat_u = rng.random(s.addon_tier.shape), rng.integers(0, 3, n), rng.uniform(0.6, 1.0, n)
        free = s.addon_tier[rows] < 0
        pick = np.argmax(free * pick_u[rows], axis=1)
        s.addon_tier[rows, pick] = np.minimum(s.core_tier[rows], tier_u[rows])
        s.addon_seats[rows, pick] = np.ceil(s.seats[rows] * seat_u[rows])
    elif len(rows):
        free = s.addon_tier[rows] < 0
        pick = np.argmax(free * rng.random(free.shape), axis=1)
        s.addon_tier[rows, pick] = np.minimum(s.core_tier[rows], rng.integers(0, 3, len(rows)))
        s.addon_seats[rows, pick] = np.ceil(s.seats[rows] * rng.uniform(0.6, 1.0, len(rows)))


def _reactivate(s: _State, t: int, timeline: Timeline, rng: np.random.Generator, event_day: np.ndarray,
                rate: float) -> None:
    """Rarely, a churned account comes back on a smaller footprint."""
    back = (~s.active & (s.churn_month >= 0) & (s.churn_month < t) & (event_day[:, t] <= timeline.as_of64)
            & (rng.random(len(s.active)) < rate))
    s.active |= back
    s.churn_month[back] = -1
    s.seats = np.where(back, np.maximum(1, np.ceil(s.seats * 0.7)), s.seats)
    s.demand = np.where(back, s.seats * 0.8, s.demand)


def _usage_state(b: AccountBlock, s: _State, rng: np.random.Generator, m: np.ndarray, hl: np.ndarray, n: int) -> None:
    """Demand for seats grows with momentum; usage per user tracks a smoothed momentum."""
    # demand relative to seats reverts towards 85 %: teams grow, but not without bound
    pressure = np.log(np.maximum(s.demand, 0.5) / np.maximum(s.seats, 1.0))
    pressure = 0.9 * pressure + 0.1 * np.log(0.85) + 0.05 * m + rng.normal(0, 0.03, n)
    s.demand = np.maximum(s.seats, 1.0) * np.exp(pressure)
    s.level = 0.85 * s.level + 0.12 * m + rng.normal(0, 0.08, n)
    s.api_on |= (s.core_tier >= 1) & (rng.random(n) < sigmoid(-3.5 + b.api_affinity + 0.5 * m))
    s.api_on &= s.core_tier >= 1
    lose = rng.random(n) < sigmoid(-4.0 - 1.5 * hl)
    regain = rng.random(n) < 0.12
    s.sponsor = np.where(s.sponsor, ~lose, regain)


def _record(h: History, s: _State, t: int, m, hl, kind, rng, b: AccountBlock) -> None:
    n = len(m)
    h.active[:, t] = s.active
    h.seats[:, t] = s.seats
    h.core_tier[:, t] = s.core_tier
    h.addon_tier[:, t] = s.addon_tier
    h.addon_seats[:, t] = s.addon_seats
    h.price_factor[:, t] = s.price_factor
    engaged = np.clip(sigmoid(1.6 + 0.8 * hl + 0.3 * m) * rng.uniform(0.9, 1.05, n), 0.05, 1.0)
    users = np.maximum(1.0, np.round(np.minimum(s.demand, s.seats) * engaged))
    h.active_users[:, t] = np.where(s.active, users, 0)
    h.events[:, t] = np.where(s.active, users * EVENTS_PER_USER * b.intensity * np.exp(s.level), 0)
    h.usage_limit[:, t] = CORE_QUOTA[s.core_tier] * s.seats
    h.momentum[:, t] = m
    h.health[:, t] = hl
    quota = quota_utilization(h.events[:, t], h.usage_limit[:, t])
    h.trial[:, t] = s.active & (s.core_tier < 2) & (rng.random(n) < sigmoid(-3.2 + 1.0 * m + 2.0 * (quota - 0.6)))
    h.api_on[:, t] = s.api_on & s.active
    h.exec_sponsor[:, t] = s.sponsor & s.active
    h.expansion_kind[:, t] = kind


def mrr(h: History) -> tuple[np.ndarray, np.ndarray]:
    """(core MRR [n, months], add-on MRR [n, months, addons]) implied by the history."""
    core = np.where(h.active, h.seats * CORE_PRICE[h.core_tier] * h.price_factor, 0.0)
    tier = np.clip(h.addon_tier, 0, 2)
    price = ADDON_PRICE[np.arange(len(ADDONS))[None, None, :], tier]
    addon = np.where(h.active[..., None] & (h.addon_tier >= 0), h.addon_seats * price * h.price_factor[..., None], 0.0)
    return core, addon
