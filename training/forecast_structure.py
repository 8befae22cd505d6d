"""What an account's expansion is worth beyond its ARR neighbours: mechanics that hold for any SaaS company.

The typical size of an account's expansion is its ARR neighbours' (``training.forecast_sizes``).
Three things move it at any subscription business, whatever simulator or company the rows
come from:

- **renewal timing**: the renewal falls inside the horizon (``months_to_renewal``): seat
  true-ups, re-tiering and multi-year renegotiations happen there, so an expansion at
  renewal can be of another size than a mid-term add-on;
- **headroom**: the account uses all it licensed (``seat_utilization_pct`` or
  ``quota_utilization_30d_pct`` at or above 100 %): an expansion of an account at its limit
  is a catch-up to what it already uses, not a trial of a few seats;
- **its own history**: the account expanded before (``expansions_past`` above 0): a
  repeat buyer's expansion follows its own earlier pattern.

Open deals give their own amounts (``training.forecast_deals``) and are not in these cells.
How many accounts expand (the count) comes from the calibrated P(expand), whose model reads
the same columns; here only the size is written from them.

Each past expansion (no open deal) is scored as its size relative to its neighbours'
expectation; the 8 cells of the three flags each get the mean of their relative sizes,
shrunk toward the overall mean by how much of the cells' spread sampling alone explains
(the method-of-moments empirical Bayes weight ``tau^2 / (tau^2 + s^2 / k)``), and
normalised so that the past expansions average 1: the level stays the neighbours', only the
split between accounts moves. A company where none of the three matters gets factors near 1.
A column that is missing leaves its flag off. Nothing here is set from one generator:
the cut points are 'inside the horizon', 'uses all it licensed' and 'expanded before'. Pure.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import pandas as pd

FLAGS = ("renewal_in_horizon", "at_capacity", "expanded_before")
CELLS = 2 ** len(FLAGS)
DAYS_PER_MONTH = 365.25 / 12


def flags(rows: pd.DataFrame, horizon_days: int) -> np.ndarray:
    """Per row, the three flags (``FLAGS``) as booleans; a missing column or value leaves its flag off."""
    n = len(rows)

    def col(name: str) -> np.ndarray:
        return rows[name].to_numpy(dtype=float, na_value=np.nan) if name in rows else np.full(n, np.nan)

    renewal = col("months_to_renewal") <= horizon_days / DAYS_PER_MONTH
    capacity = (col("seat_utilization_pct") >= 100) | (col("quota_utilization_30d_pct") >= 100)
    before = col("expansions_past") > 0
    return np.column_stack([renewal, capacity, before]).astype(bool) if n else np.zeros((0, len(FLAGS)), bool)


def cell_codes(rows: pd.DataFrame, horizon_days: int) -> np.ndarray:
    f = flags(rows, horizon_days)
    return (f * (2 ** np.arange(len(FLAGS)))).sum(axis=1).astype(int) if len(f) else np.zeros(0, int)


@dataclass
class Structure:
    """Per cell of ``FLAGS``: the factor on an account's expected expansion size, and how many past expansions it rests on."""

    horizon_days: int = 90
    factors: np.ndarray = field(default_factory=lambda: np.ones(CELLS))
    counts: np.ndarray = field(default_factory=lambda: np.zeros(CELLS, int))
    weight: np.ndarray = field(default_factory=lambda: np.zeros(CELLS))  # the shrinkage weight each cell got

    def factor(self, rows: pd.DataFrame) -> np.ndarray:
        """Per row, its cell's factor (1 where nothing was learned)."""
        return self.factors[cell_codes(rows, self.horizon_days)] if len(rows) else np.ones(0)

    def table(self) -> pd.DataFrame:
        """One row per cell: the three flags, past expansions, the shrinkage weight and the factor (for reports)."""
        code = np.arange(CELLS)
        out = pd.DataFrame({f: (code >> i) & 1 == 1 for i, f in enumerate(FLAGS)})
        return out.assign(expansions=self.counts, weight=self.weight, factor=self.factors)


def learn_structure(relative: np.ndarray, rows: pd.DataFrame, horizon_days: int) -> Structure:
    """The cells' factors from past expansions' ``relative`` sizes (size over the neighbours' expectation) and their rows."""
    rel = np.asarray(relative, dtype=float)
    codes = cell_codes(rows, horizon_days)
    keep = np.isfinite(rel) & (rel > 0)
    rel, codes = rel[keep], codes[keep]
    out = Structure(horizon_days=horizon_days)
    if len(rel) < 2:
        return out
    k = np.bincount(codes, minlength=CELLS)
    sums = np.bincount(codes, weights=rel, minlength=CELLS)
    means = np.where(k > 0, sums / np.maximum(k, 1), np.nan)
    grand = float(rel.mean())
    within = float(((rel - means[codes]) ** 2).sum() / max(len(rel) - int((k > 0).sum()), 1))
    used = k >= 2
    if used.sum() >= 2:
        between = float(np.average((means[used] - grand) ** 2, weights=k[used]))
        tau2 = max(0.0, between - float(np.average(within / k[used], weights=k[used])))
    else:
        tau2 = 0.0
    weight = np.where(k > 0, tau2 / (tau2 + within / np.maximum(k, 1)), 0.0) if tau2 > 0 else np.zeros(CELLS)
    shrunk = grand + weight * (np.nan_to_num(means, nan=grand) - grand)
    level = float(shrunk[codes].mean())
    out.factors = shrunk / level if level > 0 else np.ones(CELLS)
    out.counts, out.weight = k, weight
    return out


__all__ = ["FLAGS", "Structure", "cell_codes", "flags", "learn_structure"]
