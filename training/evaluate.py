"""One evaluation for every scorer: the LightGBM models and the rule-based baseline alike.

Metrics: ROC-AUC, PR-AUC, lift and precision in the top decile, precision at k per CSM
(k = ``Settings.csm_weekly_capacity``: the accounts one CSM can work in a week, taken from
the top of each owner's book at each snapshot, averaged over owners), Brier score and
expected calibration error (10 equal-width bins, weighted by rows). The same metrics are
computed per segment.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd
from sklearn.metrics import average_precision_score, brier_score_loss, roc_auc_score

HEADLINE = ("roc_auc", "pr_auc", "lift_top_decile", "precision_top_decile", "precision_at_k", "brier", "ece")
ECE_BINS = 10
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
    n_top = max(1, int(np.ceil(len(scores) * fraction)))
    order = np.argsort(-scores, kind="stable")[:n_top]
    precision = float(np.mean(y_true[order]))
    base = float(np.mean(y_true))
    return precision, (precision / base if base > 0 else float("nan"))


def precision_at_k(y_true: np.ndarray, scores: np.ndarray, groups: pd.Series, k: int) -> float:
    """Mean over groups (owner x snapshot) of the precision of each group's top ``k`` rows."""
    df = pd.DataFrame({"g": groups.to_numpy(), "y": y_true, "s": scores})
    df = df.sort_values(["g", "s"], ascending=[True, False], kind="stable")
    top = df.groupby("g", sort=False).head(k)
    return float(top.groupby("g")["y"].mean().mean())


def _owner_groups(frame: pd.DataFrame) -> pd.Series:
    owner = frame["csm_owner"].astype("string").fillna(NO_OWNER) if "csm_owner" in frame else pd.Series(NO_OWNER, index=frame.index)
    as_of = frame["as_of"].astype("string") if "as_of" in frame else ""
    return owner + "|" + as_of


def metrics(y_true: np.ndarray, scores: np.ndarray, groups: pd.Series, k: int) -> dict[str, float]:
    """Every headline metric; ranking metrics are NaN when only one class is present."""
    y_true, scores = np.asarray(y_true, dtype=float), np.asarray(scores, dtype=float)
    both = 0 < y_true.sum() < len(y_true)
    prec10, lift10 = top_fraction_stats(y_true, scores) if len(y_true) else (np.nan, np.nan)
    return {
        "roc_auc": float(roc_auc_score(y_true, scores)) if both else float("nan"),
        "pr_auc": float(average_precision_score(y_true, scores)) if both else float("nan"),
        "lift_top_decile": lift10,
        "precision_top_decile": prec10,
        "precision_at_k": precision_at_k(y_true, scores, groups, k) if len(y_true) else float("nan"),
        "brier": float(brier_score_loss(y_true, scores)) if len(y_true) else float("nan"),
        "ece": expected_calibration_error(y_true, scores),
        "positive_rate": float(y_true.mean()) if len(y_true) else float("nan"),
        "rows": float(len(y_true)),
    }


def evaluate(estimator: object, frame: pd.DataFrame, label: str, k: int) -> Evaluation:
    """Score ``frame`` with ``estimator`` and compute all metrics against ``label``, overall and per segment."""
    if label not in frame.columns:
        raise ValueError(f"evaluation frame: label column {label!r} is missing")
    if frame[label].isna().any():
        raise ValueError(f"evaluation frame: label column {label!r} has nulls (horizon not complete); drop those rows")
    y_true = frame[label].to_numpy(dtype=float)
    scores = positive_scores(estimator, frame)
    groups = _owner_groups(frame)
    overall = metrics(y_true, scores, groups, k)
    per_segment = []
    if "segment" in frame.columns:
        seg = frame["segment"].astype("string").fillna("(unknown)").to_numpy()
        for name in sorted(set(seg)):
            mask = seg == name
            per_segment.append({"segment": name, **metrics(y_true[mask], scores[mask], groups[mask], k)})
    return Evaluation(overall, pd.DataFrame(per_segment), scores, y_true)
