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

Why the size comes from ARR neighbours, not the whole segment: the spread of a sum of
amounts ``arr_i * r_i`` is ``sum p_i arr_i^2 Var(r | account i)``, so it is set by the
largest accounts, and the ratio's spread (and mean) falls with ARR: a two-seat account
that adds two seats doubles, a large one rarely does. One segment-wide pool gives a large
account the spread of small ones. On the generated 10,000-account company the realised
squared errors of accounts with no open deal were 0.43-0.63 of what segment-wide draws
claimed (the Bernoulli part alone 0.68-0.96): the size draws, more than the probabilities,
were too wide. So each account draws from the ``k = ceil(sqrt(n))`` past expansions (of ``n``
in its segment) nearest to it in ARR, the usual nearest-neighbour rule (k and n/k both grow
with n), and its expected size is that window's mean; an ARR weighting is no longer needed,
since a small account's ratio no longer stands in for a large one's (neighbour sizes: 0.69, 0.59,
0.95 for smb, mid-market, enterprise).

The size also goes with the account's P(expand): smb expanders in the lowest quarter of P
realised 0.77 of the neighbours' mean, the highest 1.38. Where past rows carry an
out-of-time P (the backtest's), each past expansion's size relative to its ARR neighbours'
mean is learned against that P, and an account's size is scaled by the mean relative size of
the ``ceil(sqrt(m))`` past expansions nearest in P (``Sizes.size_factor``), normalised to
average 1: the level stays the ARR neighbours' (learned from all past rows), only the shape
comes from the rows that have a P. In-sample P would overstate the shape, so rows without an
out-of-time P (the live forecast's history today) get factor 1. This moves expected amount
between accounts but hardly changes the sum's spread: with small p the variance is
``sum p_i E[size^2 | p_i]`` to first order, the same whether sizes follow P or all accounts
draw from the expanders' (P-weighted) mix.

What did over-state the spread was the edge of the ARR range: the largest accounts' window
cannot centre on them, so it holds smaller accounts whose ratios are larger, and the
largest accounts set the sum's spread. Each window's mean is therefore replaced by a
straight line in log ARR fitted over the same window and read at the account's ARR
(``Sizes.edge_scale``; local-linear rather than local-constant, which removes that bias to
first order), the draws scaled alike.

Count and size together: each Monte Carlo draw takes one past period's pair of factors (how
many expanded, relative to the mean, and how large their expansions were; ``period_shocks``)
and scales every account's P(expand) by the first and its drawn size by the second. A book
whose good quarters bring more but smaller expansions keeps that pairing in the draws, where
independent draws would add both spreads. The factors are shrunk by the part of their spread
that sampling alone explains, and scaled so that the point forecast does not move. Pure:
frames in, frames out.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from training.forecast_deals import DEAL, DealOutcomes, local_linear, neighbour_window

ALL = "all"
MEASURES = ("expansion_arr", "contraction_arr", "churned_arr", "nrr_pct")
LEVELS = (80, 95)
DRAWS = 2000
DRAW_CHUNK = 100


@dataclass
class Sizes:
    """What a segment's events have been worth, learned from labelled rows only.

    Ratios are amount / ARR of the rows where the event happened, with the row's ARR beside
    them. An expansion's size comes from the account's ARR neighbours (``expansion_windows``),
    so small accounts' large relative moves (two seats added to two double the account) do
    not set a large account's size or spread. A contraction's size is the segment's
    ARR-weighted ratio (sum of amounts / sum of ARR), as the forecast is a sum of ARR.
    """

    expansion_ratios: dict[str, np.ndarray]  # expansion ARR / ARR of rows that expanded, in order of their ARR
    contraction_rate: dict[str, float]
    contraction_ratios: dict[str, np.ndarray]
    rows: dict[str, int] = field(default_factory=dict)
    expansion_weights: dict[str, np.ndarray] = field(default_factory=dict)  # ARR of those rows, ascending
    contraction_weights: dict[str, np.ndarray] = field(default_factory=dict)
    # past expansions that carry an out-of-time P(expand): that P, ascending, and each one's size
    # relative to its ARR neighbours' mean, scaled so that their mean is 1 (``size_factor``)
    factor_probability: dict[str, np.ndarray] = field(default_factory=dict)
    factor_ratios: dict[str, np.ndarray] = field(default_factory=dict)
    deals: DealOutcomes = field(default_factory=DealOutcomes)  # what open deals turned into (forecast_deals)
    # past periods' (count factor, size factor) of expansions, drawn together per Monte Carlo draw (``period_shocks``)
    shocks: np.ndarray = field(default_factory=lambda: np.ones((0, 2)))

    def size_factor(self, segments: np.ndarray, p_expand: np.ndarray) -> np.ndarray:
        """Per account: how its expansion's size differs from its ARR neighbours' mean, given its P(expand).

        The mean relative size of the ``ceil(sqrt(m))`` past expansions (of ``m`` with a probability
        in the segment) nearest in P; 1 where the segment has none. Only the shape over P, not the
        level: the factors average 1 over those past expansions, the level is the ARR neighbours'.
        """
        out = np.ones(len(p_expand))
        for g, rel in self.factor_ratios.items():
            rows, m = np.flatnonzero(segments == g), len(rel)
            if not m or not len(rows):
                continue
            lo, k = neighbour_window(self.factor_probability[g], p_expand[rows])
            sums = np.concatenate([[0.0], np.cumsum(rel)])
            out[rows] = (sums[lo + k] - sums[lo]) / k
        return out

    def expansion_windows(self, segments: np.ndarray, arr: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Per account: start and length of its ARR-neighbour window in ``pool()``, and the window's mean ratio.

        The window is the ``ceil(sqrt(n))`` past expansions of the account's segment nearest to its
        ARR (``expansion_weights`` holds their ARR, ascending). A segment with no past expansion: length 0, mean 0.
        """
        names = sorted(self.expansion_ratios)
        offsets = np.cumsum([0, *(len(self.expansion_ratios[g]) for g in names)])
        start, size, mean = np.zeros(len(arr), int), np.zeros(len(arr), int), np.zeros(len(arr))
        for i, g in enumerate(names):
            rows, ratios = np.flatnonzero(segments == g), self.expansion_ratios[g]
            n = len(ratios)
            if not n or not len(rows):
                continue
            keys = self.expansion_weights.get(g)
            keys = keys if keys is not None and len(keys) == n else np.zeros(n)
            lo, k = neighbour_window(keys, arr[rows])
            sums = np.concatenate([[0.0], np.cumsum(ratios)])
            start[rows], size[rows], mean[rows] = offsets[i] + lo, k, (sums[lo + k] - sums[lo]) / k
        return start, size, mean

    def edge_scale(self, segments: np.ndarray, arr: np.ndarray) -> np.ndarray:
        """Per account: the local-linear fit of ratio on log ARR over its window, at its ARR, over the window's mean.

        A window mean is biased where the window cannot centre on the account (the largest and
        smallest accounts) because the ratio falls with ARR; a straight line in log ARR over the
        same window removes that bias to first order. The account's log ARR is clipped to the
        window's range (no extrapolation) and the fit to the window's ratios' range.
        """
        names = sorted(self.expansion_ratios)
        out = np.ones(len(arr))
        for g in names:
            rows, ratios = np.flatnonzero(segments == g), np.asarray(self.expansion_ratios[g], dtype=float)
            n = len(ratios)
            keys = self.expansion_weights.get(g)
            if not n or not len(rows) or keys is None or len(keys) != n or not (keys > 0).all():
                continue
            lo, k = neighbour_window(keys, arr[rows])
            mean, fit = local_linear(np.log(keys), ratios, lo, k, np.log(np.maximum(arr[rows], 1e-9)))
            out[rows] = np.where(mean > 0, fit / np.where(mean > 0, mean, 1.0), 1.0)
        return out

    def pool(self) -> np.ndarray:
        """Every segment's expansion ratios end to end, segments in sorted order (what ``expansion_windows`` indexes)."""
        names = sorted(self.expansion_ratios)
        return np.concatenate([np.zeros(0), *(np.asarray(self.expansion_ratios[g], dtype=float) for g in names)])

    def mean_contraction_ratio(self, segment: str) -> float:
        return _weighted_mean(self.contraction_ratios.get(segment), self.contraction_weights.get(segment))


def _weighted_mean(values: np.ndarray | None, weights: np.ndarray | None) -> float:
    if values is None or not len(values):
        return 0.0
    if weights is None or len(weights) != len(values) or not weights.sum() > 0:
        return float(values.mean())
    return float(np.average(values, weights=weights))


def learn_sizes(history: pd.DataFrame) -> Sizes:
    """Learn sizes from labelled rows (``segment, arr, expanded, expansion_mrr, contracted, contraction_mrr``).

    The expansion size is learned from rows with no open expansion deal at the snapshot
    (``open_expansion_amount_usd`` 0 or null), since it is used for exactly those accounts:
    expansions that come with a deal are the larger, planned ones, whose amounts the deals give.
    """
    h = history.loc[history["expanded"].notna() & (history["arr"] > 0)]
    exp = h.loc[h["expanded"] == 1].sort_values("arr", kind="stable")  # ARR order: neighbours are adjacent
    deals = DealOutcomes.learn(exp)
    if DEAL in h:
        # the typical size stands in for accounts with no open deal: learn it from such accounts only
        no_deal = exp.loc[~(exp[DEAL].fillna(0.0) > 0)]
        exp = no_deal if len(no_deal) else exp
    con = h.loc[h["contracted"] == 1]
    segs = sorted(h["segment"].dropna().unique())

    def of(rows: pd.DataFrame, s: str) -> pd.DataFrame:
        return rows.loc[rows["segment"] == s]

    sizes = Sizes(
        expansion_ratios={s: (of(exp, s)["expansion_mrr"] * 12 / of(exp, s)["arr"]).to_numpy() for s in segs},
        contraction_rate={s: float((of(h, s)["contracted"] == 1).mean()) for s in segs},
        contraction_ratios={s: np.clip((of(con, s)["contraction_mrr"] * 12 / of(con, s)["arr"]).to_numpy(), 0, 1)
                            for s in segs},
        rows={s: int((h["segment"] == s).sum()) for s in segs},
        expansion_weights={s: of(exp, s)["arr"].to_numpy(dtype=float) for s in segs},
        contraction_weights={s: of(con, s)["arr"].to_numpy(dtype=float) for s in segs},
        deals=deals,
    )
    if "p_expand" in exp:
        _learn_size_factor(sizes, exp.loc[exp["p_expand"].notna()])
    sizes.shocks = period_shocks(h)
    return sizes


MIN_SHOCK_PERIODS = 3


def period_shocks(h: pd.DataFrame) -> np.ndarray:
    """Per past period (snapshot month): how many accounts expanded and how large their expansions were, as factors.

    Count factor: the period's expansion rate over the mean rate; size factor: its expanders' mean expansion / ARR over
    the mean. Each is shrunk toward 1 by the share of its spread that sampling alone explains (a period of 20
    expanders has a noisy mean size, which is not a shock), so what stays is what periods share: a quarter with more
    expanders and smaller expansions keeps that pairing. The size factors are scaled so that ``mean(count * size) = 1``:
    the pooled sizes are already weighted by count, so the point forecast does not move; the joint draw changes the
    spread. Fewer than ``MIN_SHOCK_PERIODS`` periods: none (the draws stay independent).
    """
    if "as_of" not in h or h.empty:
        return np.ones((0, 2))
    ratio = np.where(h["expanded"] == 1, h["expansion_mrr"].fillna(0.0) * 12 / h["arr"], np.nan)
    g = pd.DataFrame({"as_of": h["as_of"].to_numpy(), "y": (h["expanded"] == 1).to_numpy(float), "r": ratio}).groupby("as_of")
    per = pd.DataFrame({"n": g["y"].size(), "rate": g["y"].mean(), "k": g["y"].sum(), "size": g["r"].mean(),
                        "size_var": g["r"].var()}).dropna()
    per = per.loc[per["k"] >= 2]
    if len(per) < MIN_SHOCK_PERIODS or not per["rate"].mean() > 0 or not per["size"].mean() > 0:
        return np.ones((0, 2))
    count = per["rate"].to_numpy() / per["rate"].mean()
    size = per["size"].to_numpy() / per["size"].mean()
    noise_c = float(np.mean(per["rate"] * (1 - per["rate"]) / per["n"]) / per["rate"].mean() ** 2)
    noise_s = float(np.mean(per["size_var"] / per["k"]) / per["size"].mean() ** 2)
    for x, noise in ((count, noise_c), (size, noise_s)):
        var = float(np.var(x, ddof=1)) if len(x) > 1 else 0.0
        keep = max(0.0, 1 - noise / var) if var > 0 else 0.0
        x[:] = 1 + np.sqrt(keep) * (x - 1)
    size = size / float(np.mean(count * size))
    return np.column_stack([count, size])


def _learn_size_factor(sizes: Sizes, exp: pd.DataFrame) -> None:
    """How the size of past expansions with an out-of-time P went with that P, relative to their ARR neighbours."""
    exp = exp.sort_values("p_expand", kind="stable")
    seg, arr = exp["segment"].astype(str).to_numpy(), exp["arr"].to_numpy(dtype=float)
    expected = sizes.expansion_windows(seg, arr)[2] * sizes.edge_scale(seg, arr)
    ratio = exp["expansion_mrr"].to_numpy(dtype=float) * 12 / arr
    relative = np.where(expected > 0, ratio / np.where(expected > 0, expected, 1.0), np.nan)
    for g in sizes.expansion_ratios:
        keep = (seg == g) & np.isfinite(relative)
        if keep.any() and relative[keep].mean() > 0:
            sizes.factor_probability[g] = exp["p_expand"].to_numpy(dtype=float)[keep]
            sizes.factor_ratios[g] = relative[keep] / relative[keep].mean()


def account_expectations(book: pd.DataFrame, p_expand: np.ndarray, p_churn: np.ndarray, sizes: Sizes) -> pd.DataFrame:
    """Per account: probabilities and the amount each event would bring (open deal amounts where present)."""
    seg = book["segment"].astype(str).to_numpy()
    arr = book["arr"].to_numpy(dtype=float)
    deal = book[DEAL].fillna(0.0).to_numpy(dtype=float) if DEAL in book else np.zeros(len(book))
    realised = np.ones(len(book))
    realised[deal > 0] = sizes.deals.expected_ratio(deal[deal > 0])
    ratio = (sizes.expansion_windows(seg, arr)[2] * sizes.edge_scale(seg, arr)
             * sizes.size_factor(seg, np.clip(p_expand, 0, 1)))
    c_ratio = np.array([sizes.mean_contraction_ratio(s) for s in seg])
    return pd.DataFrame({
        "account_id": book["account_id"].to_numpy(), "segment": seg, "arr": arr,
        "p_expand": np.clip(p_expand, 0, 1), "has_deal": deal > 0, "deal_amount": deal,
        "expansion_size": np.where(deal > 0, deal * realised, arr * ratio),
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
