"""Feature drift: population stability index (PSI) between the training window and the newest snapshot.

PSI = sum over bins of (actual% - expected%) * ln(actual% / expected%). Numeric features
use deciles of the training window as bins (plus one bin for missing values);
categorical features use their levels. Rules of thumb: under 0.1 stable, 0.1-0.25
moderate shift, above 0.25 major shift.

A shift matters only where it moves the predictions. With the model's importance (mean
|contribution| per feature, :func:`importance_of`), each PSI is weighted by the feature's
share of it (``weighted_psi``), and a feature is *reported* only when its own PSI is at
least moderate and its weighted PSI at least ``REPORT_WEIGHTED``: a feature the model barely
reads can move as much as it likes. Calendar features (tenure, months to renewal, months
to the fiscal-year start) move with the calendar by construction: every month's snapshot
differs from the training window's, which once flagged them every month. They are exempt.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

EPSILON = 1e-4  # floor on a bin's share so that an empty bin gives a large, finite PSI
STABLE_BELOW, MAJOR_ABOVE = 0.1, 0.25
#: Concepts (``features.registry``) whose features move with the calendar, not with the customers.
CALENDAR_CONCEPTS = ("tenure", "renewal_timing", "budget_cycle")
#: Weighted PSI (PSI x the feature's share of the model's importance) from which a shift is reported.
REPORT_WEIGHTED = 0.01


def calendar_features() -> set[str]:
    """Features that move with the calendar by construction (exempt from drift reports)."""
    from features.registry import FEATURES

    return {f.name for f in FEATURES if f.concept in CALENDAR_CONCEPTS}


def importance_of(model: object, frame: pd.DataFrame, max_rows: int = 2000) -> pd.Series:
    """Mean |contribution| per feature of ``model`` (a ``TrainedModel``) on up to ``max_rows`` rows of ``frame``."""
    sample = frame.iloc[:: max(1, len(frame) // max_rows)].head(max_rows)
    return model.contributions(sample).abs().mean()  # type: ignore[attr-defined]


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


def feature_drift(
    expected: pd.DataFrame, actual: pd.DataFrame, features: list[str], categorical: list[str],
    importance: pd.Series | None = None,
) -> pd.DataFrame:
    """PSI per feature between two frames, largest drift first: columns feature, psi, level.

    With ``importance`` (per feature, any scale), also ``importance_share``, ``weighted_psi``,
    ``calendar`` and ``reported`` (a shift that moved the predictions; calendar features never),
    ordered by weighted PSI.
    """
    missing = [f for f in features if f not in expected.columns or f not in actual.columns]
    if missing:
        raise ValueError(f"drift: feature column(s) {', '.join(missing[:10])} missing from one of the frames")
    out = []
    for f in features:
        value = psi_categorical(expected[f], actual[f]) if f in categorical else psi_numeric(expected[f], actual[f])
        out.append({"feature": f, "psi": value, "level": drift_level(value)})
    table = pd.DataFrame(out)
    if importance is None:
        return table.sort_values("psi", ascending=False, ignore_index=True)
    weights = importance.reindex(table["feature"]).fillna(0.0).clip(lower=0.0).to_numpy(dtype=float)
    table["importance_share"] = weights / weights.sum() if weights.sum() > 0 else 0.0
    table["weighted_psi"] = table["psi"].fillna(0.0) * table["importance_share"]
    table["calendar"] = table["feature"].isin(calendar_features())
    table["reported"] = (~table["calendar"]) & (table["psi"] >= STABLE_BELOW) & (table["weighted_psi"] >= REPORT_WEIGHTED)
    return table.sort_values(["reported", "weighted_psi"], ascending=False, ignore_index=True)
