"""What an expansion or contraction is worth, learned from labelled past rows (``Sizes``, ``learn_sizes``).

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
that sampling alone explains, and scaled so that the point forecast does not move. Pure.
"""


from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from training.forecast_deals import DEAL, DealOutcomes, local_linear, neighbour_window
from training.forecast_structure import Structure, learn_structure


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
    # renewal timing, headroom and the account's own history on the size (training.forecast_structure)
    structure: Structure = field(default_factory=Structure)

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


def learn_sizes(history: pd.DataFrame, horizon_days: int = 90) -> Sizes:
    """Learn sizes from labelled rows (``segment, arr, expanded, expansion_mrr, contracted, contraction_mrr``).

    The expansion size is learned from rows with no open expansion deal at the snapshot
    (``open_expansion_amount_usd`` 0 or null), since it is used for exactly those accounts:
    expansions that come with a deal are the larger, planned ones, whose amounts the deals give.
    ``horizon_days`` sets what 'renewal inside the horizon' means for the structure's cells.
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
    sizes.structure = learn_structure(relative_sizes(sizes, exp), exp, horizon_days)
    return sizes


def relative_sizes(sizes: Sizes, exp: pd.DataFrame) -> np.ndarray:
    """Each past expansion's size over what the neighbours (and the P shape, where it has a P) expected of it."""
    seg, arr = exp["segment"].astype(str).to_numpy(), exp["arr"].to_numpy(dtype=float)
    expected = sizes.expansion_windows(seg, arr)[2] * sizes.edge_scale(seg, arr)
    if "p_expand" in exp:
        p = exp["p_expand"].to_numpy(dtype=float, na_value=np.nan)
        shape = sizes.size_factor(seg, np.clip(np.nan_to_num(p, nan=0.0), 0, 1))
        expected = expected * np.where(np.isfinite(p), shape, 1.0)
    ratio = exp["expansion_mrr"].to_numpy(dtype=float) * 12 / arr
    return np.where(expected > 0, ratio / np.where(expected > 0, expected, 1.0), np.nan)


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
