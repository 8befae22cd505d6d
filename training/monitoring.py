"""Realised performance of past score runs: what each scored month said, against what happened.

Pure core. The caller (``serving.jobs.monitoring``) joins a score run's stored scores with the
outcomes read from the data once the run's horizon has passed, one row per account:
``account_id, as_of, csm_owner, segment, outcome`` and one column per scorer that ranked
the month (``champion``: the served model's probability, ``baseline``: the rule-based
readiness, ``shadow``: the challenger scored beside the champion, never shown to CSMs).

:func:`realised` measures every scorer on the same accounts: ROC-AUC, lift and precision in
the top decile, precision of each CSM's top ``book_share``, Brier and ECE (probabilities
only), each with an account-level bootstrap interval and the positive count, paired
differences (champion - baseline, shadow - champion, shadow - baseline), overall and per
segment. :func:`calibration` gives observed against predicted per decile of the champion's
probability, and the band within which the month's observed positives should fall if the
probabilities were right. :func:`alarms` reads the stored track record.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd
from scipy.stats import norm

from training.bootstrap import CONFIDENCE, Scores, compare
from training.evaluate import BOOK_SHARE, book_codes

SCORERS = ("champion", "shadow", "baseline")
PAIRS = (("champion", "baseline"), ("shadow", "champion"), ("shadow", "baseline"))
MONITORED = ("roc_auc", "lift_top_decile", "precision_top_decile", "precision_top_book", "brier", "ece")
PROBABILITY_SCORERS = ("champion", "shadow")  # the baseline is a 0-100 readiness, not a probability
ALL = "(all)"
DECILES = 10
#: The calibration band: observed positives within this two-sided level of what the probabilities predict.
BAND_CONFIDENCE = 0.99
#: Runs with disjoint outcome windows that must fall outside the band (with every run between them).
CALIBRATION_RUNS = 2
DAYS_PER_MONTH = 365.25 / 12


@dataclass(frozen=True)
class Alarm:
    """One alarm on a model's track record, with the runs and figures it rests on."""

    model_name: str
    kind: str  # "lift_below_baseline" or "calibration_drift"
    months: tuple[str, ...]
    message: str

    @property
    def key(self) -> str:
        """Idempotency key: the same alarm on the same months is sent once."""
        return f"model-health:{self.model_name}:{self.kind}:{','.join(self.months)}"


def present_scorers(rows: pd.DataFrame) -> list[str]:
    """Scorers with a score on every row (a column that is partly empty is not comparable on the same accounts)."""
    return [s for s in SCORERS if s in rows.columns and rows[s].notna().all() and len(rows)]


def realised(
    rows: pd.DataFrame, *, replicates: int, confidence: float = CONFIDENCE, book_share: float = BOOK_SHARE,
    by_segment: bool = True, decision_confidence: float | None = None,
) -> pd.DataFrame:
    """Every monitored metric of every present scorer on one scored month, overall and per segment.

    Returns ``segment, scorer, metric, value, low, high, positives, rows`` (and the decision
    interval when ``decision_confidence`` is given); ``segment`` is ``(all)`` for the whole month.
    Raises ValueError naming the column when ``outcome`` or ``account_id`` is missing or has nulls.
    """
    for column in ("account_id", "outcome"):
        if column not in rows.columns or rows[column].isna().any():
            raise ValueError(f"realised performance: column {column!r} is missing or has nulls")
    keys = present_scorers(rows)
    if not keys:
        raise ValueError("realised performance: no scorer column (champion, shadow, baseline) is complete")
    parts = [(ALL, rows)]
    if by_segment and "segment" in rows.columns:
        seg = rows["segment"].astype("string").fillna("(unknown)")
        parts += [(name, rows[seg == name]) for name in sorted(seg.unique())]
    out = []
    for segment, part in parts:
        y = part["outcome"].to_numpy(dtype=float)
        if y.sum() == 0 or y.sum() == len(y):
            continue  # one class only: nothing to rank
        scorers = {k: Scores(part[k].to_numpy(dtype=float), _probability(k, part[k])) for k in keys}
        pairs = [(a, b) for a, b in PAIRS if a in keys and b in keys]
        table = compare(y, scorers, part["account_id"].to_numpy(), book_codes(part), names=MONITORED,
                        replicates=replicates, confidence=confidence, book_share=book_share,
                        decision_confidence=decision_confidence, pairs=pairs)
        out.append(table.assign(segment=segment))
    if not out:
        return pd.DataFrame(columns=["segment", "scorer", "metric", "value", "low", "high", "positives", "rows"])
    table = pd.concat(out, ignore_index=True)
    # Brier and ECE read probabilities: the baseline's readiness is not one, so its (and its pairs') are dropped.
    not_probability = table["scorer"].str.split(" - ").map(lambda parts: any(p not in PROBABILITY_SCORERS for p in parts))
    return table[~(table["metric"].isin(("brier", "ece")) & not_probability)].reset_index(drop=True)


def _probability(scorer: str, values: pd.Series) -> np.ndarray:
    return values.to_numpy(dtype=float)


def month_spread(pooled: pd.DataFrame, label: str, probability: str = "model_probability",
                 confidence: float = 0.90) -> float:
    """How far a month's observed rate strays from its mean predicted probability beyond what chance gives,
    measured on the pooled out-of-time months of the backtest (a standard deviation, as a rate).

    Outcomes of one month share a season and a market, so months differ by more than the
    binomial spread of independent accounts; a band without this term cried wolf in
    generated companies whose champion was fine. A backtest has few months, so the variance
    of the monthly deviations is taken at the upper end of its ``confidence`` interval
    (chi-square, ``k - 1`` degrees of freedom) before the binomial part is removed: with five
    months the point estimate was 0 in three of ten companies, and the band again too tight.
    """
    from scipy.stats import chi2

    frame = pd.DataFrame({"m": pd.to_datetime(pooled["as_of"]), "y": pooled[label].to_numpy(dtype=float),
                          "p": pooled[probability].to_numpy(dtype=float)})
    months = frame.groupby("m").agg(y=("y", "mean"), p=("p", "mean"), n=("y", "size"),
                                    v=("p", lambda p: float(np.sum(p * (1 - p)))))
    k = len(months)
    if k < 3:
        return 0.0
    chance = float((months["v"] / months["n"] ** 2).mean())
    upper = (k - 1) * float((months["y"] - months["p"]).var(ddof=1)) / float(chi2.ppf(1 - confidence, k - 1))
    return float(np.sqrt(max(0.0, upper - chance)))


def calibration(y: np.ndarray, p: np.ndarray, confidence: float = BAND_CONFIDENCE,
                month_sd: float = 0.0) -> tuple[pd.DataFrame, dict[str, float]]:
    """Observed against predicted per decile of ``p`` (equal counts), and the month's calibration band.

    The band: if each account's outcome were drawn with its predicted probability, the count of
    positives would have mean ``sum p`` and variance ``sum p (1 - p)``; months also stray from
    their prediction by ``month_sd`` (:func:`month_spread`, from the champion's backtest). The
    band is the normal interval of both at ``confidence``, as rates. ``outside`` is -1 (fewer
    than predicted), 0 (inside) or +1 (more).
    """
    y, p = np.asarray(y, dtype=float), np.asarray(p, dtype=float)
    order = np.argsort(p, kind="stable")
    decile = np.empty(len(p), dtype=int)
    decile[order] = np.minimum(np.arange(len(p)) * DECILES // max(len(p), 1), DECILES - 1)
    frame = pd.DataFrame({"decile": decile + 1, "predicted": p, "observed": y})
    table = frame.groupby("decile").agg(predicted=("predicted", "mean"), observed=("observed", "mean"),
                                        rows=("observed", "size")).reset_index()
    n = max(len(p), 1)
    expected, sd = float(p.sum()), float(np.sqrt(np.sum(p * (1 - p))))
    z = float(norm.ppf(0.5 + confidence / 2))
    spread = float(np.sqrt((sd / n) ** 2 + month_sd**2))
    low, high = expected / n - z * spread, expected / n + z * spread
    observed = float(y.sum()) / n
    outside = -1 if observed < low else 1 if observed > high else 0
    ece = float(np.sum(table["rows"] * (table["observed"] - table["predicted"]).abs()) / n)
    return table, {"observed_rate": observed, "predicted_rate": expected / n, "band_low": low, "band_high": high,
                   "outside": float(outside), "ece_deciles": ece, "month_sd": month_sd}


def calibration_span(horizon_days: int, runs: int = CALIBRATION_RUNS) -> int:
    """Monthly runs, in a row, that calibration drift needs: ``runs`` runs whose outcome windows do not overlap,
    and every run between them.

    A run at month end ``m`` counts the outcomes of ``(m, m + H]``. With a 90-day horizon the
    runs of three consecutive months share a month of outcomes, so one unusual month of
    expansions pushes all three outside the band: "two runs in a row" then counted one event
    twice (a generated company's three runs outside, all holding the same June). Runs
    ``ceil(H / month)`` months apart see disjoint windows, so they are two pieces of evidence.
    """
    return (runs - 1) * int(np.ceil(horizon_days / DAYS_PER_MONTH - 1e-9)) + 1


def _month_period(month: str) -> pd.Period:
    return pd.Period(str(month)[:7], freq="M")


def alarms(track: pd.DataFrame, horizon_days: int = 90) -> list[Alarm]:
    """Alarms on a model's stored track record (``track``: rows of :func:`realised` plus ``model_name, month``
    and the calibration rows ``scorer='champion', metric='calibration_outside'``).

    - lift below the baseline: in the newest month, the champion's top-decile lift minus the
      baseline's has its whole interval below 0;
    - calibration drift: the observed rate fell outside the predicted band, on the same side,
      in every monthly run of the newest :func:`calibration_span` months (``CALIBRATION_RUNS``
      runs whose ``horizon_days`` outcome windows do not overlap, and the runs between them;
      a missing month breaks the span).
    """
    found: list[Alarm] = []
    overall = track[track["segment"] == ALL]
    span = calibration_span(horizon_days)
    for name, part in overall.groupby("model_name", sort=True):
        months = sorted(part["month"].unique())
        if not months:
            continue
        newest = part[part["month"] == months[-1]]
        gain = newest[(newest["scorer"] == "champion - baseline") & (newest["metric"] == "lift_top_decile")]
        if len(gain) and gain["high"].iloc[0] < 0:
            g = gain.iloc[0]
            found.append(Alarm(name, "lift_below_baseline", (months[-1],),
                               f"{name}: the champion's realised top-decile lift on {months[-1]} is below the rule-based "
                               f"baseline's by {-g['value']:.2f} (90% interval {g['low']:+.2f} to {g['high']:+.2f}, "
                               f"{int(g['positives'])} positives in {int(g['rows'])} accounts)"))
        side = part[(part["scorer"] == "champion") & (part["metric"] == "calibration_outside")]
        side = side.set_index("month")["value"].reindex(months[-span:])
        consecutive = len(months) >= span and (_month_period(months[-1]) - _month_period(months[-span])).n == span - 1
        if consecutive and side.notna().all() and (side != 0).all() and side.nunique() == 1:
            rates = part[(part["scorer"] == "champion") & part["metric"].isin(("observed_rate", "band_low", "band_high"))]
            rates = rates[rates["month"].isin(side.index)].pivot(index="month", columns="metric", values="value")
            words = ", ".join(f"{m}: observed {r.observed_rate:.3f} outside {r.band_low:.3f}-{r.band_high:.3f}"
                              for m, r in rates.iterrows())
            direction = "more" if side.iloc[0] > 0 else "fewer"
            found.append(Alarm(name, "calibration_drift", tuple(side.index),
                               f"{name}: calibration drift, {direction} positives than the champion predicted in "
                               f"{span} monthly runs in a row, {CALIBRATION_RUNS} of them with disjoint {horizon_days}-day "
                               f"outcome windows ({words}; {BAND_CONFIDENCE:.0%} band)"))
    return found


def track_rows(month: str, model_name: str, table: pd.DataFrame,
               calib: tuple[pd.DataFrame, dict[str, float]] | None, versions: dict[str, str | None]) -> pd.DataFrame:
    """One scored month's stored rows: the realised table plus the champion's calibration figures
    (the band, and observed / predicted per decile as ``decile_NN_observed`` / ``_predicted``), with versions."""
    out = table.assign(month=month, model_name=model_name)
    if calib is not None:
        deciles, band = calib
        first = table[table["segment"] == ALL].iloc[0] if len(table) else None
        counts = {"positives": float(first["positives"]) if first is not None else np.nan,
                  "rows": float(first["rows"]) if first is not None else np.nan}
        figures = {("calibration_outside" if k == "outside" else k): v for k, v in band.items()}
        for d in deciles.itertuples():
            figures[f"decile_{d.decile:02d}_observed"] = d.observed
            figures[f"decile_{d.decile:02d}_predicted"] = d.predicted
        extra = pd.DataFrame([{"segment": ALL, "scorer": "champion", "metric": k, "value": float(v), "low": np.nan,
                               "high": np.nan, **counts} for k, v in figures.items()])
        out = pd.concat([out, extra.assign(month=month, model_name=model_name)], ignore_index=True)
    out["version"] = out["scorer"].map(lambda s: versions.get(s.split(" - ")[0]))
    return out
