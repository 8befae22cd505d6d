"""Sales opportunities and their stage history, consistent with the simulated subscriptions.

Most expansions (seats, upgrades, cross-sells) are preceded by a won opportunity that
moved through the stages and closed on the day the subscription changed; its amount is
the seller's estimate of the ARR change (the true change times a lognormal error).
Renewal price uplifts and a segment-dependent share of expansions arrive with no
opportunity. Other opportunities are lost, after stalling longer in their stages, at a
rate that rises with the account's momentum. The simulation ends at ``as_of``, so deals
expected to close after it are drawn from each active account's own recent expansion
rate and stay open, with only the stages entered by ``as_of``.
"""

from __future__ import annotations

import numpy as np
import pyarrow as pa

from features.synth.accounts import AccountBlock
from features.synth.lifecycle import KIND_CROSS_SELL, KIND_SEATS, KIND_UPGRADE, History, mrr
from features.synth.timeline import Timeline

DEFAULT_STAGES = ("prospecting", "qualification", "needs_analysis", "proposal", "negotiation", "closed_won",
                  "closed_lost")
OPEN_STAGES = 5  # the stages before closed_won / closed_lost
WITH_OPPORTUNITY = np.array([0.6, 0.8, 0.9])  # share of expansions preceded by a won deal: smb, mid, enterprise
CYCLE_DAYS = np.array([[10, 50], [25, 90], [40, 140]])  # sales cycle range by segment
LOST_MONTHLY = np.array([0.006, 0.012, 0.02])
AMOUNT_ERROR_SIGMA = 0.25
KIND_NAME = {KIND_SEATS: "expansion", KIND_UPGRADE: "upsell", KIND_CROSS_SELL: "cross_sell"}
SECONDS_PER_DAY = 86_400


def _cycle(rng: np.random.Generator, segment: np.ndarray, stretch: float = 1.0) -> np.ndarray:
    lo, hi = CYCLE_DAYS[segment, 0], CYCLE_DAYS[segment, 1]
    return np.round(rng.uniform(lo, hi) * stretch).astype(np.int64)


def _deals(b: AccountBlock, h: History, timeline: Timeline, rng: np.random.Generator) -> dict[str, np.ndarray]:
    """Won deals behind expansions, lost deals, and deals still open at as_of (close day numbers since 1970)."""
    n, T = h.active.shape
    core, addon = mrr(h)
    arr = 12 * (core + addon.sum(axis=-1))
    days = timeline.anniversary_dates(b.day)[:, :T].astype(np.int64)
    start = np.datetime64(timeline.window_start, "D").astype(np.int64)
    end = timeline.as_of64.astype(np.int64)
    in_window = (days >= start) & (days <= end)
    delta = np.zeros_like(arr)
    delta[:, 1:] = arr[:, 1:] - arr[:, :-1]
    kind = h.expansion_kind
    won = np.isin(kind, list(KIND_NAME)) & in_window & (delta > 0)
    won &= rng.random(won.shape) < WITH_OPPORTUNITY[b.segment][:, None]
    acc_w, t_w = np.nonzero(won)
    won_amount = delta[acc_w, t_w] * rng.lognormal(0, AMOUNT_ERROR_SIGMA, len(acc_w))
    # lost deals: more often where momentum is high (appetite without a buying decision)
    p_lost = LOST_MONTHLY[b.segment][:, None] * np.exp(0.5 * h.momentum)
    lost = h.active & in_window & (rng.random((n, T)) < p_lost)
    acc_l, t_l = np.nonzero(lost)
    lost_amount = arr[acc_l, t_l] * rng.uniform(0.1, 0.5, len(acc_l))
    # deals closing after as_of: each active account's own expansion rate over the window, next 4 months
    months_seen = np.maximum(in_window.sum(axis=1), 1)
    rate = (won.sum(axis=1) / months_seen) if won.any() else np.zeros(n)
    rate = np.where(rate > 0, rate, WITH_OPPORTUNITY[b.segment] * 0.02)
    alive = h.active[:, -1] & (arr[:, -1] > 0)
    future_acc, future_close, future_amount = [], [], []
    for month in range(1, 5):
        hit = alive & (rng.random(n) < rate)
        rows = np.flatnonzero(hit)
        future_acc.append(rows)
        future_close.append(end + (month - 1) * 30 + rng.integers(1, 31, len(rows)))
        future_amount.append(arr[rows, -1] * rng.uniform(0.1, 0.5, len(rows)))
    f_acc = np.concatenate(future_acc)
    kinds = np.array(list(KIND_NAME.values()))
    return {
        "account": np.concatenate([acc_w, acc_l, f_acc]),
        "close": np.concatenate([days[acc_w, t_w], days[acc_l, t_l] + rng.integers(0, 30, len(acc_l)),
                                 np.concatenate(future_close)]),
        "amount": np.round(np.concatenate([won_amount, lost_amount, np.concatenate(future_amount)]), 2),
        "kind": np.concatenate([np.vectorize(KIND_NAME.get)(kind[acc_w, t_w]) if len(acc_w) else np.array([], str),
                                kinds[rng.integers(0, 3, len(acc_l))], kinds[rng.integers(0, 3, len(f_acc))]]),
        "won": np.concatenate([np.ones(len(acc_w), bool), np.zeros(len(acc_l), bool), np.ones(len(f_acc), bool)]),
        "stretch": np.concatenate([np.ones(len(acc_w)), np.full(len(acc_l), 1.6), np.ones(len(f_acc))]),
    }


def opportunity_tables(
    b: AccountBlock, h: History, timeline: Timeline, rng: np.random.Generator, first_id: int = 0,
) -> tuple[pa.Table, pa.Table]:
    """The ``opportunities`` and ``opportunity_stages`` rows of one block, cut at ``as_of``."""
    d = _deals(b, h, timeline, rng)
    m = len(d["account"])
    seg = b.segment[d["account"]]
    cycle = np.maximum(_cycle(rng, seg) * d["stretch"], 3).astype(np.int64)
    close_s = d["close"] * SECONDS_PER_DAY + rng.integers(9 * 3600, 18 * 3600, m)
    created_s = close_s - cycle * SECONDS_PER_DAY - rng.integers(0, 3600, m)
    end_s = (timeline.as_of64.astype(np.int64) + 1) * SECONDS_PER_DAY
    # stages: some deals start at qualification; lost deals stop at a random open stage
    first = (rng.random(m) < 0.3).astype(np.int64)
    last_open = np.where(d["won"], OPEN_STAGES - 1, rng.integers(first, OPEN_STAGES))
    # stage entries: the first at creation, the rest at sorted random points of the cycle
    cuts = np.sort(rng.random((m, OPEN_STAGES)), axis=1) * 0.95
    ids = np.array([f"O{first_id + i:09d}" for i in range(m)], dtype=object)
    won = d["won"]
    s_opp, s_stage, s_at = [ids[won], ids[~won]], [np.full(won.sum(), "closed_won"),
                                                  np.full((~won).sum(), "closed_lost")], [close_s[won], close_s[~won]]
    for k in range(OPEN_STAGES):
        on = (k >= first) & (k <= last_open)
        frac = np.where(k == first, 0.0, cuts[:, k])
        at = created_s + (frac * (close_s - created_s)).astype(np.int64)
        s_opp.append(ids[on])
        s_stage.append(np.full(on.sum(), DEFAULT_STAGES[k]))
        s_at.append(at[on])
    opp, stage, at = np.concatenate(s_opp), np.concatenate(s_stage), np.concatenate(s_at)
    keep_opp = created_s < end_s
    seen = set(ids[keep_opp])
    keep_stage = (at < end_s) & np.isin(opp, list(seen))
    is_open = close_s >= end_s
    opps = pa.table({
        "opportunity_id": pa.array(ids[keep_opp], pa.string()),
        "account_id": pa.array(b.account_id[d["account"]][keep_opp], pa.string()),
        "kind": pa.array(d["kind"][keep_opp], pa.string()),
        "amount": pa.array(d["amount"][keep_opp], pa.float64()),
        "created_at": pa.array(created_s[keep_opp] * 1_000_000, pa.timestamp("us")),
        "expected_close_date": pa.array(
            ((created_s + (cycle * rng.uniform(0.7, 1.3, m)).astype(np.int64) * SECONDS_PER_DAY) // SECONDS_PER_DAY)
            [keep_opp].astype(np.int32), pa.date32()),
        "closed_at": pa.array(np.where(is_open, 0, close_s)[keep_opp] * 1_000_000, pa.timestamp("us"),
                              mask=is_open[keep_opp]),
        "outcome": pa.array(np.where(is_open, "open", np.where(d["won"], "won", "lost"))[keep_opp], pa.string()),
        "owner": pa.array(np.array(b.csm_owner, dtype=object)[d["account"]][keep_opp], pa.string()),
    })
    order = np.lexsort((at[keep_stage], opp[keep_stage]))
    stages = pa.table({
        "opportunity_id": pa.array(opp[keep_stage][order], pa.string()),
        "stage": pa.array(stage[keep_stage][order], pa.string()),
        "entered_at": pa.array(at[keep_stage][order] * 1_000_000, pa.timestamp("us")),
    })
    return opps, stages
