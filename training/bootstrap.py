"""Account-level (clustered) bootstrap intervals for pooled out-of-time metrics.

One account contributes a row at every cut-off it was active at, and those rows are not
independent (the same usage pattern, the same CSM). Resampling rows would understate the
uncertainty, so each replicate draws *accounts* with replacement and keeps all of their
rows. Every scorer is measured on the same replicates, so the difference between two
scorers (a *paired* bootstrap) carries only the uncertainty of the comparison itself.
Intervals are percentile intervals (default 90 %) *re-centred on the reported estimate*: the
replicates are shifted by the point estimate minus their median before the percentiles are
read. Some metrics are biased under resampling (a resample repeats accounts, so ECE and the
precision of each CSM's top accounts move even when nothing else does); a plain percentile
interval of such a metric can miss its own point (``ece 0.003 [0.004, 0.010]``). Shifted by
the median bias, the interval keeps its width and its asymmetry and holds the point by
construction (the median lies between any two percentiles around it). A metric that cannot
be negative keeps a lower end of at least 0. A comparison can also carry a second,
wider interval for decisions (``decision_confidence``): the promotion gate decides on it,
while reports keep the 90 % one.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

import numpy as np
import pandas as pd

from training.evaluate import BOOK_SHARE, HEADLINE, metrics

CONFIDENCE = 0.90
REPLICATES = 1000
SEED = 20


@dataclass(frozen=True)
class Interval:
    """A point estimate with the ends of its bootstrap interval."""

    value: float
    low: float
    high: float
    level: float = CONFIDENCE

    def __str__(self) -> str:
        return f"{self.value:.3f} [{self.low:.3f}, {self.high:.3f}]"


@dataclass(frozen=True)
class Scores:
    """One scorer's output on the pooled rows: a ranking score and a probability (for Brier and ECE)."""

    ranking: np.ndarray
    probability: np.ndarray


def cluster_resamples(clusters: np.ndarray, replicates: int, seed: int = SEED) -> Iterator[np.ndarray]:
    """Row indices of ``replicates`` resamples that draw whole clusters (accounts) with replacement."""
    codes, _ = pd.factorize(np.asarray(clusters))
    order = np.argsort(codes, kind="stable")
    sizes = np.bincount(codes)
    starts = np.r_[0, np.cumsum(sizes)[:-1]]
    rng = np.random.default_rng(seed)
    for _ in range(replicates):
        drawn = rng.integers(0, len(sizes), len(sizes))
        lengths = sizes[drawn]
        # Row positions of the drawn clusters, concatenated: start of each drawn cluster plus 0..len-1.
        offsets = np.arange(lengths.sum()) - np.repeat(np.cumsum(lengths) - lengths, lengths)
        yield order[np.repeat(starts[drawn], lengths) + offsets]


def interval(point: float, replicates: np.ndarray, confidence: float = CONFIDENCE) -> Interval:
    """Percentile interval of bootstrap ``replicates`` re-centred on ``point`` (NaN replicates are ignored).

    The replicates are shifted by ``point - median(replicates)`` (their median bias), so the
    interval contains ``point``; when ``point`` and every replicate are >= 0 (a rate, a
    share, ECE) the lower end stays >= 0.
    """
    replicates = np.asarray(replicates, dtype=float)
    finite = replicates[np.isfinite(replicates)]
    if len(finite) == 0 or not np.isfinite(point):
        return Interval(float(point), float("nan"), float("nan"), confidence)
    tail = (1.0 - confidence) / 2.0 * 100.0
    median, low, high = np.percentile(finite, [50.0, tail, 100.0 - tail])
    shift = float(point) - float(median)
    low, high = min(low + shift, float(point)), max(high + shift, float(point))  # min/max: float rounding only
    if point >= 0 and finite.min() >= 0:
        low = max(low, 0.0)
    return Interval(float(point), float(low), float(high), confidence)


def compare(
    y_true: np.ndarray,
    scorers: dict[str, Scores],
    clusters: np.ndarray,
    books: np.ndarray,
    *,
    names: tuple[str, ...] = HEADLINE,
    replicates: int = REPLICATES,
    confidence: float = CONFIDENCE,
    book_share: float = BOOK_SHARE,
    seed: int = SEED,
    strata: np.ndarray | None = None,
    decision_confidence: float | None = None,
    pairs: list[tuple[str, str]] | None = None,
) -> pd.DataFrame:
    """Every metric of every scorer on the same rows with its interval, plus paired gains of the first scorer.

    Returns a long frame: ``scorer, metric, value, low, high, positives, rows``; rows whose
    scorer is ``"<first> - <other>"`` hold the paired difference of the first scorer over
    each other one on the same replicates (higher is better for every metric but Brier and ECE).
    ``strata`` (snapshot codes) makes ROC-AUC count pairs within a snapshot only.
    ``decision_confidence`` adds ``decision_low`` and ``decision_high``: the same replicates'
    interval at that level, for decisions (:func:`lookup` with ``decision=True``).
    ``pairs`` names the paired differences ``(a, b)`` to report (default: the first scorer
    against each other one).
    """
    y_true = np.asarray(y_true, dtype=float)
    books = np.asarray(books)
    keys = list(scorers)

    def measure(idx: np.ndarray | slice) -> dict[str, dict[str, float]]:
        part = None if strata is None else np.asarray(strata)[idx]
        return {
            k: metrics(y_true[idx], s.ranking[idx], books[idx], book_share, s.probability[idx], names, strata=part)
            for k, s in scorers.items()
        }

    point = measure(slice(None))
    reps = {k: {m: [] for m in names} for k in keys}
    for idx in cluster_resamples(clusters, replicates, seed):
        measured = measure(idx)
        for k in keys:
            for m in names:
                reps[k][m].append(measured[k][m])
    out = []
    counts = {"positives": float(y_true.sum()), "rows": float(len(y_true))}

    def row(scorer: str, metric: str, point_value: float, draws: np.ndarray) -> dict[str, object]:
        fields = {"scorer": scorer, "metric": metric, **_fields(interval(point_value, draws, confidence))}
        if decision_confidence is not None:
            wide = interval(point_value, draws, decision_confidence)
            fields.update(decision_low=wide.low, decision_high=wide.high, decision_level=decision_confidence)
        return {**fields, "level": confidence, **counts}

    for k in keys:
        for m in names:
            out.append(row(k, m, point[k][m], np.asarray(reps[k][m])))
    for a, b in pairs if pairs is not None else [(keys[0], other) for other in keys[1:]]:
        for m in names:
            diff = np.asarray(reps[a][m]) - np.asarray(reps[b][m])
            out.append(row(f"{a} - {b}", m, point[a][m] - point[b][m], diff))
    return pd.DataFrame(out)


def _fields(iv: Interval) -> dict[str, float]:
    return {"value": iv.value, "low": iv.low, "high": iv.high}


def lookup(table: pd.DataFrame, scorer: str, metric: str, decision: bool = False) -> Interval:
    """The interval of one scorer (or paired difference ``"a - b"``) and metric from a :func:`compare` table.

    ``decision=True`` gives the wider decision interval when the table has one (else the reported one).
    """
    row = table[(table["scorer"] == scorer) & (table["metric"] == metric)]
    if row.empty:
        raise KeyError(f"no {metric!r} for scorer {scorer!r} in the comparison")
    r = row.iloc[0]
    level = float(r["level"]) if "level" in r.index else CONFIDENCE
    if decision and "decision_low" in r.index and pd.notna(r.get("decision_level")):
        return Interval(float(r["value"]), float(r["decision_low"]), float(r["decision_high"]), float(r["decision_level"]))
    return Interval(float(r["value"]), float(r["low"]), float(r["high"]), level)
