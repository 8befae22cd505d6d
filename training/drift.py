"""Feature drift: population stability index (PSI) between the training window and the newest snapshot.

PSI = sum over bins of (actual% - expected%) * ln(actual% / expected%). Numeric features
use deciles of the training window as bins (plus one bin for missing values);
categorical features use their levels. Rules of thumb: under 0.1 stable, 0.1-0.25
moderate shift, above 0.25 major shift.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

EPSILON = 1e-4  # floor on a bin's share so that an empty bin gives a large, finite PSI
STABLE_BELOW, MAJOR_ABOVE = 0.1, 0.25


def _psi(expected_share: np.ndarray, actual_share: np.ndarray) -> float:
    e = np.maximum(expected_share, EPSILON)
    a = np.maximum(actual_share, EPSILON)
    return float(np.sum((a - e) * np.log(a / e)))


def psi_numeric(expected: pd.Series, actual: pd.Series, bins: int = 10) -> float:
    """PSI of a numeric feature over the expected sample's quantile bins, missing values as their own bin."""
    e = pd.to_numeric(expected, errors="coerce").to_numpy(dtype=float, na_value=np.nan)
    a = pd.to_numeric(actual, errors="coerce").to_numpy(dtype=float, na_value=np.nan)
    if len(e) == 0 or len(a) == 0:
        return float("nan")
    finite = e[~np.isnan(e)]
    edges = np.unique(np.quantile(finite, np.linspace(0, 1, bins + 1)[1:-1])) if len(finite) else np.array([])

    def shares(x: np.ndarray) -> np.ndarray:
        idx = np.where(np.isnan(x), len(edges) + 1, np.searchsorted(edges, x, side="right"))
        return np.bincount(idx, minlength=len(edges) + 2) / len(x)

    return _psi(shares(e), shares(a))


def psi_categorical(expected: pd.Series, actual: pd.Series) -> float:
    """PSI of a categorical feature over the union of its levels (missing counts as a level)."""
    e = expected.astype("string").fillna("(missing)")
    a = actual.astype("string").fillna("(missing)")
    if len(e) == 0 or len(a) == 0:
        return float("nan")
    levels = sorted(set(e.unique()) | set(a.unique()))
    e_share = e.value_counts(normalize=True).reindex(levels, fill_value=0.0).to_numpy()
    a_share = a.value_counts(normalize=True).reindex(levels, fill_value=0.0).to_numpy()
    return _psi(e_share, a_share)


def drift_level(psi: float) -> str:
    """``stable``, ``moderate`` or ``major`` by the usual PSI rules of thumb."""
    if np.isnan(psi):
        return "unknown"
    return "stable" if psi < STABLE_BELOW else "moderate" if psi <= MAJOR_ABOVE else "major"


def feature_drift(expected: pd.DataFrame, actual: pd.DataFrame, features: list[str], categorical: list[str]) -> pd.DataFrame:
    """PSI per feature between two frames, largest drift first: columns feature, psi, level."""
    missing = [f for f in features if f not in expected.columns or f not in actual.columns]
    if missing:
        raise ValueError(f"drift: feature column(s) {', '.join(missing[:10])} missing from one of the frames")
    out = []
    for f in features:
        value = psi_categorical(expected[f], actual[f]) if f in categorical else psi_numeric(expected[f], actual[f])
        out.append({"feature": f, "psi": value, "level": drift_level(value)})
    return pd.DataFrame(out).sort_values("psi", ascending=False, ignore_index=True)
