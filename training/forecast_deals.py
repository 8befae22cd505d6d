"""What an open expansion deal turns into, learned from past expanders that had one; and the neighbour windows.

An open deal's amount is what the rep expects; what the account then adds can differ. Past
expanders that had an open deal at their snapshot realised ``expansion ARR / open deal
amount``. The ratio has a long upper tail for small deals (a small deal that grows into a
larger order) and runs below 1 for large ones (a large deal split, trimmed or partly
closed), so it is read off the ``ceil(sqrt(n))`` past deals nearest in amount, with the
same local-linear correction at the edges of the range as the expansion sizes
(``training.forecast.Sizes``). Segments are pooled: a deal's amount, not the account's
segment label, is what the ratio follows, and one pool keeps small companies' windows
filled. With no past deal the amount is taken as given (ratio 1), as before.

Conditional on expanding: the model's P(expand) already says whether it happens; this
says how much, so only expanders enter the pool. Pure: arrays in, arrays out.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import pandas as pd

DEAL = "open_expansion_amount_usd"


def neighbour_window(keys: np.ndarray, x: np.ndarray) -> tuple[np.ndarray, int]:
    """Start of the ``k = ceil(sqrt(n))`` sorted ``keys`` nearest each ``x`` (clipped to the ends), and ``k``."""
    n = len(keys)
    k = int(np.ceil(np.sqrt(n)))
    return np.clip(np.searchsorted(keys, x) - k // 2, 0, n - k), k


def local_linear(log_keys: np.ndarray, values: np.ndarray, lo: np.ndarray, k: int, log_x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Per window ``[lo, lo + k)``: its mean of ``values``, and a straight line in ``log_keys`` fitted over it read at
    ``log_x`` (clipped to the window's key range, no extrapolation, and to its value range)."""
    c = {name: np.concatenate([[0.0], np.cumsum(v)]) for name, v in
         (("x", log_keys), ("xx", log_keys * log_keys), ("y", values), ("xy", log_keys * values))}
    w = {name: (v[lo + k] - v[lo]) / k for name, v in c.items()}
    var = w["xx"] - w["x"] ** 2
    slope = np.where(var > 1e-12, (w["xy"] - w["x"] * w["y"]) / np.where(var > 1e-12, var, 1.0), 0.0)
    x0 = np.clip(log_x, log_keys[lo], log_keys[lo + k - 1])
    window = values[lo[:, None] + np.arange(k)[None, :]]
    return w["y"], np.clip(w["y"] + slope * (x0 - w["x"]), window.min(axis=1), window.max(axis=1))


@dataclass
class DealOutcomes:
    """Past expanders' realised expansion ARR over their open deals' amount, in order of the amount."""

    amounts: np.ndarray = field(default_factory=lambda: np.zeros(0))
    ratios: np.ndarray = field(default_factory=lambda: np.zeros(0))

    @classmethod
    def learn(cls, expanders: pd.DataFrame) -> DealOutcomes:
        """From labelled rows that expanded (``expansion_mrr``, ``open_expansion_amount_usd``)."""
        if DEAL not in expanders or expanders.empty:
            return cls()
        rows = expanders.loc[expanders[DEAL].fillna(0.0) > 0].sort_values(DEAL, kind="stable")
        amount = rows[DEAL].to_numpy(dtype=float)
        return cls(amount, rows["expansion_mrr"].to_numpy(dtype=float) * 12 / amount)

    def _windows(self, amounts: np.ndarray) -> tuple[np.ndarray, int, np.ndarray, np.ndarray]:
        """Window start and size per amount, the scale from the window's mean to its local-linear fit, and the fit."""
        lo, k = neighbour_window(self.amounts, amounts)
        mean, fit = local_linear(np.log(self.amounts), self.ratios, lo, k, np.log(np.maximum(amounts, 1e-9)))
        return lo, k, np.where(mean > 0, fit / np.where(mean > 0, mean, 1.0), 1.0), fit

    def expected_ratio(self, amounts: np.ndarray) -> np.ndarray:
        """Per open deal amount: what an expansion brings per unit of it (1 with no past deals)."""
        if not len(self.ratios) or not len(amounts):
            return np.ones(len(amounts))
        return self._windows(amounts)[3]

    def draw(self, amounts: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        """One ratio per event: a past deal's from its amount's window, scaled to the window's local-linear fit."""
        if not len(self.ratios) or not len(amounts):
            return np.ones(len(amounts))
        lo, k, scale, _ = self._windows(amounts)
        return self.ratios[lo + (rng.random(len(amounts)) * k).astype(int)] * scale


__all__ = ["DEAL", "DealOutcomes", "local_linear", "neighbour_window"]
