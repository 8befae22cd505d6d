"""``backtest``: how the product would have done for a company, replaying the monthly job at past cut-offs.

For each cut-off ``C``: the feature frame as a job at ``C`` saw it (snapshots up to ``C``,
labels only where complete by ``C``; features are built once, since a feature at
``t <= C`` is the same whether the data is cut at ``C`` or not), the whole monthly job
(pooled backtest, refit, gate against the baseline and the champion of the previous
replayed month), scores at ``C``, then what happened in ``(C, C + H]`` from the full data.
The replayed months are pooled: the ranking that *served* (the champion after each
cut-off's gate, the rule-based baseline where none had been promoted), the refit model of
each cut-off and the baseline, on the same rows, with account-level bootstrap intervals
and counts, the share of the next quarter's expansion MRR that the top decile held, and the
precision of each CSM's top accounts. ``served_by`` says which months each served. The MRR
share is a size measure: a ranking by current MRR alone holds much of it, so it is also
measured for that ranking (``current_mrr``), and a gain on it is one over both.

Folds are cached across cut-offs (a fold depends only on its own snapshots), so a
replay costs about one pooled backtest plus one refit per cut-off.
"""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

import numpy as np
import pandas as pd

from features.config import Settings
from training.baseline import BaselineClassifier
from training.bootstrap import Scores, cluster_resamples, compare, interval
from training.datasets import LABELS, HistoryError, MIN_CUTOFFS, cut_at, folds_for, labelled_snapshots
from training.evaluate import HEADLINE, book_codes, snapshot_codes
from training.gate import ShadowRecord, gate, shadow_spent
from training.models import DEFAULT_ROUNDS, TrainedModel
from training.names import MODEL_NAMES
from training.train import replicates_for, train_model

LABEL_COLUMNS = ("expanded", "churned", "contracted", "expansion_mrr")
TOP_DECILE = 0.1
SCORERS = ("served", "model", "baseline")
# Paired differences reported: what served and the refit model, each against the baseline, and against each other.
PAIRS = [("served", "baseline"), ("model", "baseline"), ("model", "served")]
SIZE_RANKING = "current_mrr"  # a ranking by the account's MRR at the cut-off: what size alone buys


@dataclass
class BacktestResult:
    """Per cut-off decisions, pooled figures with intervals, per-CSM precision and the scored rows."""

    cutoffs: pd.DataFrame  # cut-off x model: decision, reasons, positives, rounds, warning
    summary: pd.DataFrame  # model x scorer x metric: value, low, high, positives, rows
    books: pd.DataFrame  # per CSM and model: accounts worked (top of book), hits, precision model / baseline
    scores: pd.DataFrame  # every scored row: keys, outcome, model / baseline / served scores


def eligible_cutoffs(frame: pd.DataFrame, horizon_days: int) -> list[pd.Timestamp]:
    """Labelled month ends at which a job, seeing only data up to them, has the minimum history to train."""
    dates = labelled_snapshots(frame, "expanded")
    horizon = pd.Timedelta(days=horizon_days)
    return [c for c in dates if len(folds_for([d for d in dates if d + horizon <= c], horizon_days)) >= MIN_CUTOFFS]


def choose_cutoffs(
    frame: pd.DataFrame, horizon_days: int, n_cutoffs: int | None = None,
    start: pd.Timestamp | None = None, end: pd.Timestamp | None = None,
) -> list[pd.Timestamp]:
    """The newest ``n_cutoffs`` eligible cut-offs, or those in [start, end]; ValueError saying why none fit."""
    eligible = eligible_cutoffs(frame, horizon_days)
    if start is not None or end is not None:
        chosen = [c for c in eligible if (start is None or c >= start) and (end is None or c <= end)]
    else:
        chosen = eligible[-n_cutoffs:] if n_cutoffs else eligible
    if not chosen:
        span = f"{eligible[0].date()} .. {eligible[-1].date()}" if eligible else "none"
        raise HistoryError(
            f"backtest: no cut-off fits. A cut-off needs its {horizon_days}-day outcome inside the data and enough "
            f"history before it to train ({MIN_CUTOFFS} test months of its own); eligible month ends: {span}"
        )
    return chosen


def backtest(
    frame: pd.DataFrame, features: list[str], categorical: list[str], settings: Settings, cutoffs: list[pd.Timestamp],
    *, num_boost_round: int = DEFAULT_ROUNDS, models: tuple[str, ...] = MODEL_NAMES,
) -> BacktestResult:
    """Replay the monthly job at each cut-off of ``cutoffs`` on ``frame`` (built once, labels from the full data).

    The models' replays are independent (each has its own champion chain), so they run
    ``Settings.training_workers`` at a time, as in the monthly job.
    """
    cache: dict = {}

    def replay(name: str) -> tuple[list[dict[str, object]], list[pd.DataFrame]]:
        champion: TrainedModel | None = None
        shadow: TrainedModel | None = None  # the rejected version scored beside what serves
        decisions, scored = [], []
        for cutoff in sorted(cutoffs):
            seen = cut_at(frame, cutoff, settings.horizon_days, LABEL_COLUMNS)
            outcome_rows = frame[(pd.to_datetime(frame["as_of"]) == cutoff) & frame["expanded"].notna()]
            result = train_model(name, seen, features, categorical, settings, num_boost_round=num_boost_round,
                                 fold_cache=cache, interval_metrics=("roc_auc",))
            record = None if shadow is None else shadow_record(scored, shadow.version, cutoff, settings.horizon_days)
            decision = gate(result, champion, settings, shadow=record)
            result.model.version = cutoff.date().isoformat()
            shadow_before = shadow.version if shadow is not None else ""
            if decision.promote:
                champion, shadow = result.model, None
            elif shadow is None or shadow_spent(record, settings):
                shadow = result.model  # a new shadow once the old one had its chance on enough months
            decisions.append({
                "cutoff": cutoff.date().isoformat(), "model": name, "decision": decision.label,
                "evidence": decision.evidence, "reasons": "; ".join(decision.reasons), "pooled_positives": result.positives,
                "inner_cutoffs": len(result.folds), "rounds": result.rounds, "warning": result.warning or "",
                "shadow_before": shadow_before, "shadow_realised_positives": 0 if record is None else int(record.rows["outcome"].sum()),
                "served": champion.version if champion is not None else "baseline",
                "shadow": shadow.version if shadow is not None else "",
            })
            scored.append(_score(name, outcome_rows, result.model, champion, shadow))
        return decisions, scored

    workers = max(1, min(settings.training_workers, len(models)))
    with ThreadPoolExecutor(max_workers=workers, thread_name_prefix="replay") as pool:
        replays = list(pool.map(replay, models))
    # cut-off by cut-off, models in the order given (as the monthly job would have logged them)
    decisions = sorted((d for ds, _ in replays for d in ds), key=lambda d: (d["cutoff"], models.index(d["model"])))
    scores = pd.concat([part for _, parts in replays for part in parts], ignore_index=True)
    table = pd.DataFrame(decisions)
    summary = summarize(scores, settings).merge(served_months(table), on="model_name", how="left")
    return BacktestResult(table, summary, csm_precision(scores, settings), scores)


def served_months(decisions: pd.DataFrame) -> pd.DataFrame:
    """Per model, which ranking served at which cut-offs: ``baseline: 2025-11-30, ...; v2025-12-31: ...``."""
    out = []
    for name, part in decisions.groupby("model", sort=False):
        groups = part.groupby("served", sort=False)["cutoff"].apply(list)
        text = "; ".join(f"{'baseline' if who == 'baseline' else 'v' + str(who)}: {', '.join(months)}"
                         for who, months in groups.items())
        out.append({"model_name": name, "served_by": text})
    return pd.DataFrame(out, columns=["model_name", "served_by"])


def shadow_record(scored: list[pd.DataFrame], version: str, cutoff: pd.Timestamp, horizon_days: int) -> ShadowRecord:
    """The shadow version's realised months as a job at ``cutoff`` knows them: scored months whose horizon has passed."""
    known = [p for p in scored if len(p) and (p["shadow_by"] == version).all()
             and pd.Timestamp(p["as_of"].iloc[0]) + pd.Timedelta(days=horizon_days) <= cutoff]
    columns = ["account_id", "as_of", "outcome", "shadow", "served", "baseline"]
    rows = pd.concat([p[columns] for p in known], ignore_index=True) if known else pd.DataFrame(columns=columns)
    return ShadowRecord(version, rows)


def _score(name: str, rows: pd.DataFrame, model: TrainedModel, champion: TrainedModel | None,
           shadow: TrainedModel | None = None) -> pd.DataFrame:
    """Scores at the cut-off: the job's refit model, the baseline, what served after the gate, and the shadow."""
    label = LABELS[name]
    baseline = BaselineClassifier(name).score(rows)  # type: ignore[arg-type]
    keep = [c for c in ("account_id", "as_of", "csm_owner", "segment", "expansion_mrr") if c in rows.columns]
    out = rows[keep].copy()
    out["model_name"], out["outcome"] = name, rows[label].to_numpy(dtype=float)
    out["model"] = model.predict_proba(rows)
    out["baseline"] = baseline
    out["served"] = champion.predict_proba(rows) if champion is not None else baseline
    out["served_by"] = champion.version if champion is not None else "baseline"
    out["shadow"] = shadow.predict_proba(rows) if shadow is not None else np.nan
    out["shadow_by"] = shadow.version if shadow is not None else ""
    if "mrr" in rows.columns:
        out[SIZE_RANKING] = pd.to_numeric(rows["mrr"], errors="coerce").fillna(0.0).to_numpy(dtype=float)
    return out


def summarize(scores: pd.DataFrame, settings: Settings) -> pd.DataFrame:
    """Pooled over cut-offs, per model: every metric of what served, the refit model and the baseline with
    intervals and paired differences, and the top-decile MRR share (also of a ranking by current MRR)."""
    parts = []
    replicates = replicates_for(len(scores), settings.bootstrap_replicates)
    for name, rows in scores.groupby("model_name", sort=False):
        y = rows["outcome"].to_numpy(dtype=float)
        scorers = {k: Scores(rows[k].to_numpy(), rows[k].to_numpy()) for k in SCORERS}
        table = compare(y, scorers, rows["account_id"].to_numpy(), book_codes(rows), names=HEADLINE,
                        replicates=replicates, book_share=settings.csm_book_top_share, strata=snapshot_codes(rows),
                        pairs=PAIRS)
        parts.append(table.assign(model_name=name))
        if name == "expansion" and "expansion_mrr" in rows.columns:
            parts.append(_mrr_share(rows, replicates).assign(model_name=name))
    return pd.concat(parts, ignore_index=True)[["model_name", "scorer", "metric", "value", "low", "high", "positives", "rows"]]


def top_decile_mrr_share(as_of: np.ndarray, mrr: np.ndarray, scores: np.ndarray) -> float:
    """Share of the expansion MRR that followed each cut-off held by that cut-off's top decile by score, pooled."""
    frame = pd.DataFrame({"c": as_of, "m": mrr, "s": scores}).sort_values(["c", "s"], ascending=[True, False])
    rank = frame.groupby("c").cumcount().to_numpy()
    size = frame.groupby("c")["s"].transform("size").to_numpy()
    top = rank < np.maximum(1, np.ceil(size * TOP_DECILE))
    total = frame["m"].sum()
    return float(frame["m"].to_numpy()[top].sum() / total) if total > 0 else float("nan")


def _mrr_share(rows: pd.DataFrame, replicates: int) -> pd.DataFrame:
    mrr = rows["expansion_mrr"].fillna(0.0).to_numpy(dtype=float)
    as_of = pd.to_datetime(rows["as_of"]).to_numpy()
    keys = [*SCORERS, *([SIZE_RANKING] if SIZE_RANKING in rows.columns else [])]
    pairs = [*PAIRS, *[(k, SIZE_RANKING) for k in ("served", "model") if SIZE_RANKING in keys]]
    out = []
    point = {k: top_decile_mrr_share(as_of, mrr, rows[k].to_numpy()) for k in keys}
    reps: dict[str, list[float]] = {k: [] for k in keys}
    for idx in cluster_resamples(rows["account_id"].to_numpy(), replicates):
        for k in reps:
            reps[k].append(top_decile_mrr_share(as_of[idx], mrr[idx], rows[k].to_numpy()[idx]))
    counts = {"positives": float((mrr > 0).sum()), "rows": float(len(rows))}
    draws = {k: np.asarray(v) for k, v in reps.items()}
    figures = [(k, interval(point[k], draws[k])) for k in keys]
    figures += [(f"{a} - {b}", interval(point[a] - point[b], draws[a] - draws[b])) for a, b in pairs]
    for scorer, iv in figures:
        out.append({"scorer": scorer, "metric": "top_decile_expansion_mrr_share", "value": iv.value, "low": iv.low,
                    "high": iv.high, **counts})
    return pd.DataFrame(out)


def size_gain(summary: pd.DataFrame, model_name: str, scorer: str = "served") -> str:
    """Plain words on the top-decile MRR share of ``scorer``: a gain only over the baseline *and* a ranking by MRR."""
    rows = summary[(summary["model_name"] == model_name) & (summary["metric"] == "top_decile_expansion_mrr_share")]
    by = rows.set_index("scorer")
    if f"{scorer} - baseline" not in by.index:
        return ""
    own, base = by.loc[scorer], by.loc[f"{scorer} - baseline"]
    text = f"top decile holds {own['value']:.0%} of next-quarter expansion MRR"
    if f"{scorer} - {SIZE_RANKING}" not in by.index:
        return f"{text}; no MRR column to compare with a ranking by size, so no gain is claimed"
    size = by.loc[f"{scorer} - {SIZE_RANKING}"]
    held = by.loc[SIZE_RANKING, "value"]
    if base["low"] > 0 and size["low"] > 0:
        return f"{text}, a gain over the baseline and over ranking by current MRR ({held:.0%})"
    return (f"{text}; ranking by current MRR alone holds {held:.0%} "
            f"(difference {size['value']:+.3f} [{size['low']:+.3f}, {size['high']:+.3f}]): not a gain over size")


def csm_precision(scores: pd.DataFrame, settings: Settings) -> pd.DataFrame:
    """Per model and CSM, pooled over cut-offs: accounts in the top share of the book, how many had the outcome."""
    share = settings.csm_book_top_share
    rows = scores.assign(csm_owner=scores["csm_owner"].astype("string").fillna("(unassigned)")) if "csm_owner" in scores else scores.assign(csm_owner="(unassigned)")
    out = []
    for (name, owner), book in rows.groupby(["model_name", "csm_owner"], sort=True):
        entry = {"model_name": name, "csm_owner": owner, "book_rows": len(book), "positives": int(book["outcome"].sum())}
        for scorer in ("model", "baseline"):
            hits = worked = 0
            for _, month in book.groupby("as_of"):
                k = max(1, int(np.ceil(len(month) * share)))
                top = month.nlargest(k, scorer)
                hits, worked = hits + int(top["outcome"].sum()), worked + k
            entry[f"{scorer}_top_accounts"], entry[f"{scorer}_hits"] = worked, hits
            entry[f"{scorer}_precision"] = hits / worked if worked else float("nan")
        out.append(entry)
    return pd.DataFrame(out)
