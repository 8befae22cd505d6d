"""Next-horizon forecast of expansion, contraction and churned ARR and NRR, with Monte Carlo intervals.

Per account active at the cut-off: P(expand) and P(churn) from the calibrated models,
P(contract) from the segment's past contraction rate; the amount if it happens is the
open expansion deals' amount where one is open, else ARR times a ratio drawn from the
segment's past expansions (the learned typical size); churn loses the whole ARR.

Intervals come from a Monte Carlo over accounts (Bernoulli events x drawn sizes), not a
Poisson-binomial convolution: the quantity is a sum of *unequal, random* amounts, not a
count, and one simulation gives expansion, contraction, churn and NRR jointly for the
total and every segment. A per-segment level shock (lognormal, its spread learned from
the forecast's own past errors at earlier cut-offs whose horizon had passed) adds the
uncertainty that is shared by all accounts and that independent draws cannot show.
Pure: frames in, frames out.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import pandas as pd

ALL = "all"
MEASURES = ("expansion_arr", "contraction_arr", "churned_arr", "nrr_pct")
LEVELS = (80, 95)
DRAWS = 2000
DRAW_CHUNK = 100
MIN_RESIDUALS = 3


@dataclass
class Sizes:
    """What a segment's events have been worth, learned from labelled rows only."""

    expansion_ratios: dict[str, np.ndarray]  # expansion ARR / ARR of rows that expanded
    contraction_rate: dict[str, float]
    contraction_ratios: dict[str, np.ndarray]
    rows: dict[str, int] = field(default_factory=dict)

    def mean_expansion_ratio(self, segment: str) -> float:
        r = self.expansion_ratios.get(segment)
        return float(r.mean()) if r is not None and len(r) else 0.0


def learn_sizes(history: pd.DataFrame) -> Sizes:
    """Learn sizes from labelled rows (``segment, arr, expanded, expansion_mrr, contracted, contraction_mrr``)."""
    h = history.loc[history["expanded"].notna() & (history["arr"] > 0)]
    exp = h.loc[h["expanded"] == 1]
    con = h.loc[h["contracted"] == 1]
    segs = sorted(h["segment"].dropna().unique())
    return Sizes(
        expansion_ratios={s: (exp.loc[exp["segment"] == s, "expansion_mrr"] * 12 / exp.loc[exp["segment"] == s, "arr"]).to_numpy()
                          for s in segs},
        contraction_rate={s: float((h.loc[h["segment"] == s, "contracted"] == 1).mean()) for s in segs},
        contraction_ratios={s: np.clip((con.loc[con["segment"] == s, "contraction_mrr"] * 12
                                        / con.loc[con["segment"] == s, "arr"]).to_numpy(), 0, 1) for s in segs},
        rows={s: int((h["segment"] == s).sum()) for s in segs},
    )


def account_expectations(book: pd.DataFrame, p_expand: np.ndarray, p_churn: np.ndarray, sizes: Sizes) -> pd.DataFrame:
    """Per account: probabilities and the amount each event would bring (open deal amounts where present)."""
    seg = book["segment"].astype(str).to_numpy()
    arr = book["arr"].to_numpy(dtype=float)
    deal = book["open_expansion_amount_usd"].fillna(0.0).to_numpy(dtype=float) if "open_expansion_amount_usd" in book else np.zeros(len(book))
    ratio = np.array([sizes.mean_expansion_ratio(s) for s in seg])
    c_ratio = np.array([float(sizes.contraction_ratios.get(s, np.zeros(0)).mean()) if len(sizes.contraction_ratios.get(s, [])) else 0.0
                        for s in seg])
    return pd.DataFrame({
        "account_id": book["account_id"].to_numpy(), "segment": seg, "arr": arr,
        "p_expand": np.clip(p_expand, 0, 1), "has_deal": deal > 0,
        "expansion_size": np.where(deal > 0, deal, arr * ratio),
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


def simulate(acc: pd.DataFrame, sizes: Sizes, rng: np.random.Generator, draws: int = DRAWS,
             level_sigma: dict[str, float] | None = None) -> dict[str, dict[str, np.ndarray]]:
    """Monte Carlo draws of every measure per group: ``{group: {measure: array[draws]}}``."""
    seg = acc["segment"].to_numpy()
    groups = [ALL, *sorted(set(seg))]
    onehot = np.stack([np.ones(len(acc))] + [(seg == g).astype(float) for g in groups[1:]], axis=1)
    arr = acc["arr"].to_numpy()
    sigma = np.array([(level_sigma or {}).get(s, 0.0) for s in seg])
    has_deal, deal = acc["has_deal"].to_numpy(), acc["expansion_size"].to_numpy()
    out = {m: [] for m in ("expansion_arr", "contraction_arr", "churned_arr")}
    seg_codes = {s: i for i, s in enumerate(groups[1:])}
    codes = np.array([seg_codes[s] for s in seg])
    for start in range(0, draws, DRAW_CHUNK):
        k = min(DRAW_CHUNK, draws - start)
        shock = np.exp(rng.normal(0, 1, (k, len(groups) - 1)))[:, codes] ** sigma[None, :]
        p_exp = np.clip(acc["p_expand"].to_numpy()[None, :] * shock, 0, 1)
        expand = rng.random((k, len(acc))) < p_exp
        ratio = _draw_ratios(sizes.expansion_ratios, seg, rng, k)
        e_amt = np.where(has_deal[None, :], deal[None, :], arr[None, :] * ratio)
        churn = rng.random((k, len(acc))) < acc["p_churn"].to_numpy()[None, :]
        contract = rng.random((k, len(acc))) < acc["p_contract"].to_numpy()[None, :]
        c_amt = arr[None, :] * _draw_ratios(sizes.contraction_ratios, seg, rng, k)
        out["expansion_arr"].append((expand * e_amt) @ onehot)
        out["contraction_arr"].append((contract * c_amt) @ onehot)
        out["churned_arr"].append((churn * arr[None, :]) @ onehot)
    stacked = {m: np.concatenate(v) for m, v in out.items()}
    start_arr = arr @ onehot
    nrr = 100 * (start_arr + stacked["expansion_arr"] - stacked["contraction_arr"] - stacked["churned_arr"]) / start_arr
    stacked["nrr_pct"] = nrr
    return {g: {m: stacked[m][:, i] for m in MEASURES} for i, g in enumerate(groups)}


def _draw_ratios(ratios: dict[str, np.ndarray], seg: np.ndarray, rng: np.random.Generator, k: int) -> np.ndarray:
    out = np.zeros((k, len(seg)))
    for s in set(seg):
        cols = np.flatnonzero(seg == s)
        pool = ratios.get(s, np.zeros(0))
        if len(pool):
            out[:, cols] = pool[rng.integers(0, len(pool), (k, len(cols)))]
    return out


def forecast(acc: pd.DataFrame, sizes: Sizes, seed: int = 0, draws: int = DRAWS,
             level_sigma: dict[str, float] | None = None) -> pd.DataFrame:
    """Point forecast and 80 % / 95 % intervals of every measure, per group (``all`` first, then segments)."""
    point = point_forecast(acc)
    sims = simulate(acc, sizes, np.random.default_rng(seed), draws, level_sigma)
    for m in MEASURES:
        for level in LEVELS:
            tail = (100 - level) / 2
            point[f"{m}_low{level}"] = point["group"].map(lambda g: float(np.percentile(sims[g][m], tail)))
            point[f"{m}_high{level}"] = point["group"].map(lambda g: float(np.percentile(sims[g][m], 100 - tail)))
    return point


def level_sigma_from(residuals: pd.DataFrame) -> dict[str, float]:
    """Per segment: the spread of log(actual / forecast) of expansion ARR beyond what the draws explain.

    ``residuals`` has ``group``, ``log_ratio`` (log actual / point forecast) and ``draw_sd`` (sd of the
    log of the simulated sums without a shock). Fewer than MIN_RESIDUALS past cut-offs: no shock.
    """
    out = {}
    for g, part in residuals.groupby("group"):
        if len(part) >= MIN_RESIDUALS:
            excess = float(np.mean(part["log_ratio"] ** 2) - np.mean(part["draw_sd"] ** 2))
            out[str(g)] = float(np.sqrt(max(excess, 0.0)))
    return out
