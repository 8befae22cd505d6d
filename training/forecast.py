"""Next-horizon forecast of expansion, contraction and churned ARR and NRR, with Monte Carlo intervals.

Per account active at the cut-off: P(expand) and P(churn) from the calibrated models,
P(contract) from the segment's past contraction rate; the amount if it happens is the
open expansion deals' amount where one is open, times a ratio drawn from what past deals of
that amount turned into (``training.forecast_deals``), else ARR times a ratio drawn from the
past expansions of the segment's accounts *nearest in ARR* (the learned typical size);
churn loses the whole ARR.

Intervals come from a Monte Carlo over accounts (Bernoulli events x drawn sizes), not a
Poisson-binomial convolution: the quantity is a sum of *unequal, random* amounts, not a
count, and one simulation gives expansion, contraction, churn and NRR jointly for the
total and every segment. What independent draws cannot show, errors that accounts share
or that offset between them, is read from the forecast's own past errors
(``training.forecast_calibration``); the table carries each measure's draw sd for that.

How much an event is worth (ARR neighbours, the P(expand) shape, deals, the joint count-and-size
shocks) is ``training.forecast_sizes``; what renewal timing, headroom and the account's own
history add to it is ``training.forecast_structure``. Pure: frames in, frames out.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from training.forecast_deals import DEAL
from training.forecast_sizes import MIN_SHOCK_PERIODS, Sizes, learn_sizes, period_shocks

ALL = "all"
MEASURES = ("expansion_arr", "contraction_arr", "churned_arr", "nrr_pct")
LEVELS = (80, 95)
DRAWS = 2000
DRAW_CHUNK = 100


def account_expectations(book: pd.DataFrame, p_expand: np.ndarray, p_churn: np.ndarray, sizes: Sizes) -> pd.DataFrame:
    """Per account: probabilities and the amount each event would bring (open deal amounts where present)."""
    seg = book["segment"].astype(str).to_numpy()
    arr = book["arr"].to_numpy(dtype=float)
    deal = book[DEAL].fillna(0.0).to_numpy(dtype=float) if DEAL in book else np.zeros(len(book))
    realised = np.ones(len(book))
    realised[deal > 0] = sizes.deals.expected_ratio(deal[deal > 0])
    structure = sizes.structure.factor(book)  # renewal timing, headroom, own history (forecast_structure)
    ratio = (sizes.expansion_windows(seg, arr)[2] * sizes.edge_scale(seg, arr)
             * sizes.size_factor(seg, np.clip(p_expand, 0, 1)) * structure)
    c_ratio = np.array([sizes.mean_contraction_ratio(s) for s in seg])
    return pd.DataFrame({
        "account_id": book["account_id"].to_numpy(), "segment": seg, "arr": arr,
        "p_expand": np.clip(p_expand, 0, 1), "has_deal": deal > 0, "deal_amount": deal,
        "expansion_size": np.where(deal > 0, deal * realised, arr * ratio), "structure": structure,
        "p_churn": np.clip(p_churn, 0, 1),
        "p_contract": np.array([sizes.contraction_rate.get(s, 0.0) for s in seg]),
        "contraction_size": arr * c_ratio,
    })


def point_forecast(acc: pd.DataFrame) -> pd.DataFrame:
    """Expected figures per group (``all`` and each segment): starting ARR, expansion, contraction, churn, NRR."""
    a = acc.assign(e=acc.p_expand * acc.expansion_size, c=acc.p_contract * acc.contraction_size, ch=acc.p_churn * acc.arr)
    rows = []
    for g, part in [(ALL, a), *a.groupby("segment")]:
        start = float(part.arr.sum())
        e, c, ch = float(part.e.sum()), float(part.c.sum()), float(part.ch.sum())
        rows.append({"group": g, "accounts": len(part), "starting_arr": start, "expansion_arr": e,
                     "contraction_arr": c, "churned_arr": ch, "nrr_pct": 100 * (start + e - c - ch) / start if start else np.nan})
    return pd.DataFrame(rows)


def simulate(acc: pd.DataFrame, sizes: Sizes, rng: np.random.Generator, draws: int = DRAWS) -> dict[str, dict[str, np.ndarray]]:
    """Monte Carlo draws of every measure per group: ``{group: {measure: array[draws]}}``.

    Sizes are drawn only for the events that happen in a draw (a few % of account-draws),
    and sums per draw and segment are bin counts, so the cost is mostly the uniform draws.
    """
    seg = acc["segment"].to_numpy()
    segments = sorted(set(seg))
    codes = np.searchsorted(np.array(segments, dtype=object), seg) if len(seg) else np.zeros(0, int)
    S, n = len(segments), len(acc)
    arr = acc["arr"].to_numpy(dtype=float)
    has_deal = acc["has_deal"].to_numpy()
    deal = acc["deal_amount"].to_numpy(dtype=float)
    window_start, window_size, _ = sizes.expansion_windows(seg.astype(str), arr)
    pool = sizes.pool()
    p_exp, p_churn, p_con = (acc[c].to_numpy(dtype=float) for c in ("p_expand", "p_churn", "p_contract"))
    factor = sizes.size_factor(seg.astype(str), p_exp) * sizes.edge_scale(seg.astype(str), arr)
    factor = factor * (acc["structure"].to_numpy(dtype=float) if "structure" in acc else 1.0)
    sums = {m: np.zeros((draws, S)) for m in ("expansion_arr", "contraction_arr", "churned_arr")}
    joint = len(sizes.shocks) >= MIN_SHOCK_PERIODS
    for start in range(0, draws, DRAW_CHUNK):
        k = min(DRAW_CHUNK, draws - start)
        shock = sizes.shocks[rng.integers(len(sizes.shocks), size=k)] if joint else np.ones((k, 2))
        d, a = np.nonzero(rng.random((k, n)) < np.clip(p_exp[None, :] * shock[:, :1], 0, 1))
        pick = window_start[a] + (rng.random(len(a)) * window_size[a]).astype(int)
        ratio = np.where(window_size[a] > 0, pool[np.minimum(pick, max(len(pool) - 1, 0))] if len(pool) else 0.0, 0.0)
        realised = np.ones(len(a))
        realised[has_deal[a]] = sizes.deals.draw(deal[a][has_deal[a]], rng)
        amount = np.where(has_deal[a], deal[a] * realised, arr[a] * ratio * factor[a] * shock[d, 1])
        sums["expansion_arr"][start:start + k] = _bin(d, codes[a], amount, k, S)
        d, a = np.nonzero(rng.random((k, n)) < p_con[None, :])
        amount = arr[a] * _draw_ratios(sizes.contraction_ratios, sizes.contraction_weights, codes[a], segments, rng)
        sums["contraction_arr"][start:start + k] = _bin(d, codes[a], amount, k, S)
        d, a = np.nonzero(rng.random((k, n)) < p_churn[None, :])
        sums["churned_arr"][start:start + k] = _bin(d, codes[a], arr[a], k, S)
    start_arr = np.bincount(codes, weights=arr, minlength=S)
    out = {}
    for i, g in enumerate([ALL, *segments]):
        pick = (lambda x: x.sum(axis=1)) if g == ALL else (lambda x, i=i: x[:, i - 1])  # noqa: E731
        base = start_arr.sum() if g == ALL else start_arr[i - 1]
        m = {name: pick(v) for name, v in sums.items()}
        m["nrr_pct"] = 100 * (base + m["expansion_arr"] - m["contraction_arr"] - m["churned_arr"]) / base
        out[g] = m
    return out


def _bin(draw: np.ndarray, code: np.ndarray, amount: np.ndarray, k: int, S: int) -> np.ndarray:
    return np.bincount(draw * S + code, weights=amount, minlength=k * S).reshape(k, S)


def _draw_ratios(ratios: dict[str, np.ndarray], weights: dict[str, np.ndarray], codes: np.ndarray,
                 segments: list[str], rng: np.random.Generator) -> np.ndarray:
    """One ratio per event, drawn from its segment's past events, ARR-weighted (the draws' mean is the weighted mean)."""
    out = np.zeros(len(codes))
    for i, s in enumerate(segments):
        rows = np.flatnonzero(codes == i)
        pool = ratios.get(s, np.zeros(0))
        if len(pool) and len(rows):
            w = weights.get(s)
            p = w / w.sum() if w is not None and len(w) == len(pool) and w.sum() > 0 else None
            out[rows] = pool[rng.choice(len(pool), size=len(rows), p=p)]
    return out


def forecast(acc: pd.DataFrame, sizes: Sizes, seed: int = 0, draws: int = DRAWS) -> pd.DataFrame:
    """Point forecast, 80 % / 95 % intervals and the draws' sd of every measure, per group (``all`` first, then segments).

    The intervals are the draws' percentiles; ``training.forecast_calibration.calibrate`` rescales them by the
    forecast's track record, for which ``{measure}_draw_sd`` is kept.
    """
    point = point_forecast(acc)
    sims = simulate(acc, sizes, np.random.default_rng(seed), draws)
    for m in MEASURES:
        for level in LEVELS:
            tail = (100 - level) / 2
            point[f"{m}_low{level}"] = point["group"].map(lambda g: float(np.percentile(sims[g][m], tail)))
            point[f"{m}_high{level}"] = point["group"].map(lambda g: float(np.percentile(sims[g][m], 100 - tail)))
        point[f"{m}_draw_sd"] = point["group"].map(lambda g: float(np.std(sims[g][m])))
    return point


__all__ = ["ALL", "DRAWS", "LEVELS", "MEASURES", "Sizes", "account_expectations", "forecast", "learn_sizes",
           "period_shocks", "point_forecast", "simulate"]
