"""One evaluation for every scorer: the LightGBM models and the rule-based baseline alike.

Metrics: ROC-AUC, PR-AUC, lift and precision in the top decile, precision in the top of
each CSM's book (the top ``book_share`` of the accounts each owner holds at each snapshot,
at least one, averaged over owner-snapshots: a share rather than a fixed k, because a
fixed k as large as a book only measures the base rate), Brier score and expected
calibration error (10 equal-width bins, weighted by rows). The same metrics are computed
per segment. Every metric is a plain numpy function of (labels, scores), so the
account-level bootstrap (``training.bootstrap``) can call them thousands of times.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd
from scipy.stats import rankdata

HEADLINE = ("roc_auc", "pr_auc", "lift_top_decile", "precision_top_decile", "precision_top_book", "brier", "ece")
# Ranking metrics read the score order; probability metrics read the calibrated probability.
PROBABILITY_METRICS = ("brier", "ece")
ECE_BINS = 10
BOOK_SHARE = 0.2
NO_OWNER = "(unassigned)"


@dataclass
class Evaluation:
    """Metrics over all rows and per segment, plus the scores they came from."""

    metrics: dict[str, float]
    per_segment: pd.DataFrame
    scores: np.ndarray
    y_true: np.ndarray


def gains_curve(evaluation: Evaluation) -> tuple[np.ndarray, np.ndarray]:
    """Cumulative gains: share of rows worked from the top score down, and share of positives found."""
    order = np.argsort(-evaluation.scores, kind="stable")
    found = np.cumsum(evaluation.y_true[order]) / max(float(evaluation.y_true.sum()), 1.0)
    return np.arange(1, len(order) + 1) / max(len(order), 1), found


def positive_scores(estimator: object, frame: pd.DataFrame) -> np.ndarray:
    """Positive-class scores from an estimator returning either one column or scikit-learn's two."""
    proba = np.asarray(estimator.predict_proba(frame), dtype=float)  # type: ignore[attr-defined]
    return proba[:, 1] if proba.ndim == 2 else proba


def roc_auc(y_true: np.ndarray, scores: np.ndarray, strata: np.ndarray | None = None) -> float:
    """ROC-AUC as the Mann-Whitney statistic (ties count one half); NaN with one class only.

    With ``strata`` (integer codes, one per row: the snapshot), only pairs of a positive and a
    negative of the same stratum count: the ranking a CS team works from, one month's list.
    Pooling pairs across months would also reward or punish a model's level moving with the
    base rate from month to month (a model fitted on earlier months lags it), which is
    calibration over time, not ranking; under outcomes drawn at random it pulled pooled
    AUCs below 0.5. Over one stratum this is the plain ROC-AUC.
    """
    y_true = np.asarray(y_true, dtype=float)
    if strata is None:
        positives = float(y_true.sum())
        negatives = len(y_true) - positives
        if positives == 0 or negatives == 0:
            return float("nan")
        ranks = rankdata(scores)
        return float((ranks[y_true == 1].sum() - positives * (positives + 1) / 2) / (positives * negatives))
    codes = pd.factorize(np.asarray(strata), sort=True)[0]
    # Rank (stratum, score) jointly; a row's rank within its stratum is that minus the rows of earlier strata.
    ranks = rankdata(_within(codes, np.asarray(scores, dtype=float)))
    sizes = np.bincount(codes)
    ranks = ranks - np.r_[0, np.cumsum(sizes)[:-1]][codes]
    pos = np.bincount(codes, y_true, minlength=len(sizes))
    pairs = float(np.sum(pos * (sizes - pos)))
    if pairs == 0:
        return float("nan")
    return float((ranks[y_true == 1].sum() - np.sum(pos * (pos + 1) / 2)) / pairs)


def _within(groups: np.ndarray, scores: np.ndarray) -> np.ndarray:
    """One float key ordering rows by integer ``groups``, then by ``scores``: one sort instead of two.

    Scores are scaled into [0, 0.5] after their group code (the next group starts at +1), so
    equal scores stay equal keys (ties are kept); scores closer than about 1e-11 of their range
    may tie. Non-finite scores fall back to an exact integer key.
    """
    groups = np.asarray(groups, dtype=np.int64)
    if len(scores) == 0 or not np.isfinite(scores).all():
        rank = np.unique(scores, return_inverse=True)[1]
        return groups * (int(rank.max(initial=0)) + 1) + rank
    low, span = scores.min(), scores.max() - scores.min()
    scaled = (scores - low) / span * 0.5 if span > 0 else np.zeros(len(scores))
    return groups.astype(float) + scaled


def average_precision(y_true: np.ndarray, scores: np.ndarray) -> float:
    """PR-AUC as average precision over distinct score thresholds (scikit-learn's definition)."""
    positives = float(y_true.sum())
    if positives == 0 or positives == len(y_true):
        return float("nan")
    order = np.argsort(-scores, kind="stable")
    s, y = scores[order], y_true[order]
    last_of_tie = np.r_[np.flatnonzero(np.diff(s)), len(s) - 1]
    tp = np.cumsum(y)[last_of_tie]
    precision = tp / (last_of_tie + 1)
    recall_step = np.diff(np.r_[0.0, tp]) / positives
    return float(np.sum(recall_step * precision))


def expected_calibration_error(y_true: np.ndarray, scores: np.ndarray, bins: int = ECE_BINS) -> float:
    """Row-weighted mean |observed rate - mean score| over equal-width score bins."""
    y_true, scores = np.asarray(y_true, dtype=float), np.asarray(scores, dtype=float)
    if len(y_true) == 0:
        return float("nan")
    idx = np.clip((scores * bins).astype(int), 0, bins - 1)
    count = np.bincount(idx, minlength=bins)
    gap = np.abs(np.bincount(idx, y_true, bins) - np.bincount(idx, scores, bins))
    return float(gap.sum() / count.sum())


def calibration_curve(y_true: np.ndarray, scores: np.ndarray, bins: int = ECE_BINS) -> pd.DataFrame:
    """Per non-empty bin: mean score, observed rate and rows."""
    idx = np.clip((np.asarray(scores) * bins).astype(int), 0, bins - 1)
    df = pd.DataFrame({"bin": idx, "score": scores, "observed": np.asarray(y_true, dtype=float)})
    out = df.groupby("bin").agg(mean_score=("score", "mean"), observed_rate=("observed", "mean"), rows=("score", "size"))
    return out.reset_index()


def top_fraction_stats(y_true: np.ndarray, scores: np.ndarray, fraction: float = 0.1) -> tuple[float, float]:
    """Precision of the top ``fraction`` of rows by score, and its lift over the base rate."""
    if len(scores) == 0:
        return float("nan"), float("nan")
    n_top = max(1, int(np.ceil(len(scores) * fraction)))
    order = np.argsort(-scores, kind="stable")[:n_top]
    precision = float(np.mean(y_true[order]))
    base = float(np.mean(y_true))
    return precision, (precision / base if base > 0 else float("nan"))


def precision_top_of_books(y_true: np.ndarray, scores: np.ndarray, books: np.ndarray, share: float = BOOK_SHARE) -> float:
    """Mean over books (integer codes: owner x snapshot) of the precision of each book's top ``share`` (at least 1)."""
    if len(y_true) == 0:
        return float("nan")
    order = np.argsort(_within(np.asarray(books), -np.asarray(scores, dtype=float)), kind="stable")
    b, y = books[order], y_true[order]
    first = np.r_[True, b[1:] != b[:-1]]
    starts = np.flatnonzero(first)
    sizes = np.diff(np.r_[starts, len(b)])
    rank = np.arange(len(b)) - np.repeat(starts, sizes)
    k = np.maximum(1, np.ceil(sizes * share)).astype(int)
    top = rank < np.repeat(k, sizes)
    group = np.repeat(np.arange(len(starts)), sizes)
    hits = np.bincount(group[top], y[top], minlength=len(starts))
    return float(np.mean(hits / k))


def snapshot_codes(frame: pd.DataFrame) -> np.ndarray | None:
    """Integer code per snapshot date (the strata of :func:`roc_auc`); None without ``as_of``."""
    return pd.factorize(pd.to_datetime(frame["as_of"]), sort=True)[0] if "as_of" in frame else None


def book_codes(frame: pd.DataFrame) -> np.ndarray:
    """Integer code per (owner, snapshot): one CSM's book at one month end."""
    owner = frame["csm_owner"].astype("string").fillna(NO_OWNER) if "csm_owner" in frame else pd.Series(NO_OWNER, index=frame.index)
    as_of = frame["as_of"].astype("string") if "as_of" in frame else ""
    return pd.factorize(owner + "|" + as_of)[0]


def metrics(
    y_true: np.ndarray, scores: np.ndarray, books: np.ndarray, book_share: float = BOOK_SHARE,
    probabilities: np.ndarray | None = None, names: tuple[str, ...] = HEADLINE, strata: np.ndarray | None = None,
) -> dict[str, float]:
    """The named metrics; ranking metrics read ``scores``, Brier and ECE read ``probabilities`` (default: ``scores``).

    ``strata`` (snapshot codes) makes ROC-AUC count pairs within a snapshot only (:func:`roc_auc`).
    """
    y_true, scores = np.asarray(y_true, dtype=float), np.asarray(scores, dtype=float)
    probs = scores if probabilities is None else np.asarray(probabilities, dtype=float)
    out: dict[str, float] = {}
    if "roc_auc" in names:
        out["roc_auc"] = roc_auc(y_true, scores, strata)
    if "pr_auc" in names:
        out["pr_auc"] = average_precision(y_true, scores)
    if "lift_top_decile" in names or "precision_top_decile" in names:
        out["precision_top_decile"], out["lift_top_decile"] = top_fraction_stats(y_true, scores)
    if "precision_top_book" in names:
        out["precision_top_book"] = precision_top_of_books(y_true, scores, np.asarray(books), book_share)
    if "brier" in names:
        out["brier"] = float(np.mean((probs - y_true) ** 2)) if len(y_true) else float("nan")
    if "ece" in names:
        out["ece"] = expected_calibration_error(y_true, probs)
    out["positive_rate"] = float(y_true.mean()) if len(y_true) else float("nan")
    out["positives"] = float(y_true.sum())
    out["rows"] = float(len(y_true))
    return out


def check_labelled(frame: pd.DataFrame, label: str) -> np.ndarray:
    """The label as floats; ValueError naming the column when it is absent or has nulls."""
    if label not in frame.columns:
        raise ValueError(f"evaluation frame: label column {label!r} is missing")
    if frame[label].isna().any():
        raise ValueError(f"evaluation frame: label column {label!r} has nulls (horizon not complete); drop those rows")
    return frame[label].to_numpy(dtype=float)


def evaluate_scores(
    frame: pd.DataFrame, label: str, scores: np.ndarray, book_share: float = BOOK_SHARE,
    probabilities: np.ndarray | None = None,
) -> Evaluation:
    """All metrics of given scores against ``label``, overall and per segment."""
    y_true = check_labelled(frame, label)
    scores = np.asarray(scores, dtype=float)
    probs = scores if probabilities is None else np.asarray(probabilities, dtype=float)
    books, strata = book_codes(frame), snapshot_codes(frame)
    overall = metrics(y_true, scores, books, book_share, probs, strata=strata)
    per_segment = []
    if "segment" in frame.columns:
        seg = frame["segment"].astype("string").fillna("(unknown)").to_numpy()
        for name in sorted(set(seg)):
            mask = seg == name
            part = None if strata is None else strata[mask]
            per_segment.append({"segment": name, **metrics(y_true[mask], scores[mask], books[mask], book_share, probs[mask],
                                                            strata=part)})
    return Evaluation(overall, pd.DataFrame(per_segment), scores, y_true)


def evaluate(estimator: object, frame: pd.DataFrame, label: str, book_share: float = BOOK_SHARE) -> Evaluation:
    """Score ``frame`` with ``estimator`` and compute all metrics against ``label``, overall and per segment."""
    check_labelled(frame, label)
    return evaluate_scores(frame, label, positive_scores(estimator, frame), book_share)
