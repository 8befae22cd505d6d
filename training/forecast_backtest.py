"""The forecast replayed at past cut-offs against two naive forecasts, on data up to each cut-off only.

The models' out-of-time predictions come from the pooled rolling-origin folds of
``training.datasets`` / ``training.train`` (each cut-off's booster trained on snapshots whose
labels were complete by then). Everything else a cut-off uses is also cut there: the
calibration is fitted on earlier cut-offs' predictions whose horizon had passed, the round
count is chosen on those same earlier cut-offs, the sizes and contraction rate on labelled
rows complete by the cut-off, and the intervals' calibration on the forecast's own errors at
earlier cut-offs whose horizon had passed (``training.forecast_calibration``): the backtest
forecasts at every month with out-of-time probabilities, as the product would run monthly.
The methods are compared where all of them ran (a year of history); interval hit rates are
also counted over every cut-off. ``model_draws_only`` is the same forecast with the draws'
own intervals, to show what the calibration changes.

Naive forecasts, per segment: ``naive_last`` applies the last period's rates (the snapshot
one horizon back, whose labels end at the cut-off) to the current book's ARR;
``naive_mean4`` the mean rate of the last four such periods.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from features.config import Settings
from features.deal_metrics import wilson
from training.datasets import LABELS, pooled_folds, rows
from training.forecast import ALL, Sizes, account_expectations, forecast, learn_sizes, point_forecast
from training.forecast_calibration import calibrate, dispersion, residuals
from training.forecast_choice import TRACK, candidates_at, choose, long_rows
from training.forecast_serve import period_spread, serve
from training.models import Calibrator, round_grid
from training.names import ModelName
from training.train import FIRST_FOLD_ROUNDS, best_rounds, run_fold

NAIVE_PERIODS = 4
PERIOD_MONTHS = 3  # one 90-day horizon back is the month end three months earlier
SEGMENTS = "segments"  # the summary's row pooling every segment's cut-offs


def contraction_mrr(moves: pd.DataFrame, snapshots: pd.DataFrame, horizon_days: int) -> pd.Series:
    """Contraction MRR per (account_id, as_of) in ``(as_of, as_of + H]`` from movements (``account_id, date, movement, mrr_delta``)."""
    c = moves.loc[moves["movement"] == "contraction", ["account_id", "date", "mrr_delta"]]
    j = snapshots[["account_id", "as_of"]].merge(c, on="account_id")
    d, t = pd.to_datetime(j["date"]), pd.to_datetime(j["as_of"])
    j = j.loc[(d > t) & (d <= t + pd.Timedelta(days=horizon_days))]
    out = (-j["mrr_delta"]).groupby([j["account_id"], j["as_of"]]).sum()
    keys = pd.MultiIndex.from_frame(snapshots[["account_id", "as_of"]])
    return out.reindex(keys).fillna(0.0)


def actuals(book: pd.DataFrame) -> pd.DataFrame:
    """What happened over the horizon per group, from complete labels of the book at the cut-off."""
    b = book.assign(e=book["expansion_mrr"] * 12, c=book["contraction_mrr"] * 12, ch=book["arr"] * book["churned"])
    out = []
    for g, part in [(ALL, b), *b.groupby("segment")]:
        start = float(part["arr"].sum())
        e, c, ch = float(part["e"].sum()), float(part["c"].sum()), float(part["ch"].sum())
        out.append({"group": g, "starting_arr": start, "expansion_arr": e, "contraction_arr": c, "churned_arr": ch,
                    "nrr_pct": 100 * (start + e - c - ch) / start})
    return pd.DataFrame(out).set_index("group")


def naive(frame: pd.DataFrame, cutoff: pd.Timestamp, book: pd.DataFrame, periods: int,
          min_periods: int | None = None) -> pd.DataFrame | None:
    """Rates of the last ``periods`` complete periods applied to the book's ARR; None when fewer than ``min_periods``
    (default: all of them) have rows. With ``min_periods`` the mean is over the consecutive recent periods present."""
    past = [cutoff - pd.DateOffset(months=PERIOD_MONTHS * k) for k in range(1, periods + 1)]
    past = [(p + pd.offsets.MonthEnd(0)).normalize() for p in past]
    as_of = pd.to_datetime(frame["as_of"])
    rates = []
    for p in past:
        rows_p = frame.loc[(as_of == p) & frame["expanded"].notna()]
        if rows_p.empty:
            break
        rates.append(actuals(rows_p))
    if len(rates) < (periods if min_periods is None else min_periods) or not rates:
        return None
    now = actuals(book)[["starting_arr"]]
    out = []
    for g in now.index:
        start = float(now.loc[g, "starting_arr"])
        r = {m: float(np.mean([x.loc[g, m] / x.loc[g, "starting_arr"] for x in rates if g in x.index]))
             for m in ("expansion_arr", "contraction_arr", "churned_arr")}
        e, c, ch = (start * r[m] for m in ("expansion_arr", "contraction_arr", "churned_arr"))
        out.append({"group": g, "starting_arr": start, "expansion_arr": e, "contraction_arr": c, "churned_arr": ch,
                    "nrr_pct": 100 * (start + e - c - ch) / start})
    return pd.DataFrame(out).set_index("group")


def period_rates(frame: pd.DataFrame, cutoff: pd.Timestamp, periods: int) -> pd.DataFrame:
    """Each of the last ``periods`` complete periods' outcome per group in points of its starting ARR (NRR in its own
    points): ``period, group, measure, pts``; the interval floor of ``training.forecast_choice`` reads their spread."""
    as_of = pd.to_datetime(frame["as_of"])
    out = []
    for k in range(1, periods + 1):
        p = (cutoff - pd.DateOffset(months=PERIOD_MONTHS * k) + pd.offsets.MonthEnd(0)).normalize()
        rows_p = frame.loc[(as_of == p) & frame["expanded"].notna()]
        if rows_p.empty:
            break
        a = actuals(rows_p)
        for g, r in a.iterrows():
            for m in ("expansion_arr", "contraction_arr", "churned_arr", "nrr_pct"):
                value = r[m] if m == "nrr_pct" else 100 * r[m] / r["starting_arr"]
                out.append({"period": p, "group": g, "measure": m, "pts": float(value)})
    return pd.DataFrame(out, columns=["period", "group", "measure", "pts"])


def _oot_predictions(frame: pd.DataFrame, name: str, features: list[str], categorical: list[str],
                     settings: Settings, max_rounds: int) -> dict[pd.Timestamp, np.ndarray]:
    """Calibrated out-of-time probabilities per test month, calibration and rounds from earlier complete months only."""
    label = LABELS[name]
    folds = pooled_folds(frame, label, settings.horizon_days, name=name)
    grid = round_grid(max_rounds)
    runs = [run_fold(name, frame, f, features, categorical, grid, settings.lgbm_threads) for f in folds]
    ys = [rows(frame, f.test, label)[label].to_numpy(dtype=float) for f in folds]
    horizon = pd.Timedelta(days=settings.horizon_days)
    out = {}
    for i, fold in enumerate(folds):
        done = [j for j in range(i) if folds[j].test + horizon <= fold.test]
        if not done:
            continue
        r = best_rounds([runs[j] for j in done], [ys[j] for j in done], grid) if len(done) > 1 else (
            FIRST_FOLD_ROUNDS if FIRST_FOLD_ROUNDS in grid else grid[len(grid) // 2])
        cal = Calibrator.fit(np.concatenate([runs[j].raw[r] for j in done]), np.concatenate([ys[j] for j in done]))
        out[fold.test] = cal(runs[i].raw[r])
    return out


def oot_predictions(frame: pd.DataFrame, features: list[str], categorical: list[str], settings: Settings,
                    max_rounds: int = 300) -> dict[str, dict[pd.Timestamp, np.ndarray]]:
    """Both models' calibrated out-of-time probabilities per test month (the expensive part of the backtest)."""
    return {name: _oot_predictions(frame, name, features, categorical, settings, max_rounds)
            for name in (ModelName.expansion, ModelName.churn)}


def oot_probability(frame: pd.DataFrame, by_month: dict[pd.Timestamp, np.ndarray]) -> pd.Series:
    """The out-of-time P(expand) of every ``frame`` row whose month has one (else null), on ``frame``'s index.

    The sizes learn from these past rows how an expansion's size goes with its probability; a
    row's probability came from a booster and calibration fitted before its month.
    """
    out = pd.Series(np.nan, index=frame.index)
    for month, p in by_month.items():
        out.loc[rows(frame, month, "expanded").index] = p
    return out


def backtest_forecast(frame: pd.DataFrame, features: list[str], categorical: list[str], settings: Settings, *,
                      max_rounds: int = 300, draws: int = 1000, seed: int = 0,
                      predictions: dict[str, dict[pd.Timestamp, np.ndarray]] | None = None) -> pd.DataFrame:
    """``backtest_with_record`` without the record."""
    return backtest_with_record(frame, features, categorical, settings, max_rounds=max_rounds, draws=draws, seed=seed,
                                predictions=predictions)[0]


def backtest_with_record(frame: pd.DataFrame, features: list[str], categorical: list[str], settings: Settings, *,
                         max_rounds: int = 300, draws: int = 1000, seed: int = 0,
                         predictions: dict[str, dict[pd.Timestamp, np.ndarray]] | None = None
                         ) -> tuple[pd.DataFrame, pd.DataFrame]:
    """One row per cut-off, group and method (model, naive_last, naive_mean4, live): forecast, interval, actual, errors.

    ``frame`` needs the labels, ``arr``, ``segment`` and ``contraction_mrr`` (see ``contraction_mrr``).
    ``predictions`` (from ``oot_predictions``) skips training when the caller already has them. Also returns the
    record the live forecast chooses on: every base method's forecast per cut-off, group and measure beside the actual
    (``training.forecast_choice.TRACK``).
    """
    preds = predictions or oot_predictions(frame, features, categorical, settings, max_rounds)
    cutoffs = sorted(set(preds[ModelName.expansion]) & set(preds[ModelName.churn]))
    horizon = pd.Timedelta(days=settings.horizon_days)
    as_of = pd.to_datetime(frame["as_of"])
    p_expand = oot_probability(frame, preds[ModelName.expansion])
    early = naive_record(frame, cutoffs[0]) if cutoffs else pd.DataFrame(columns=TRACK)
    # the naive forecasts' record starts where the data allow, not where the model's does: they need no model
    out, track, base, served_rows = [], [], [early] if len(early) else [], []
    cand = early.assign(shift_pts=0.0) if len(early) else pd.DataFrame()
    for k, cutoff in enumerate(cutoffs):
        book = rows(frame, cutoff, "expanded")
        if not len(book) == len(rows(frame, cutoff, "churned")):
            raise ValueError(f"cut-off {cutoff.date()}: expansion and churn rows differ")
        history = frame.loc[(as_of + horizon <= cutoff) & frame["expanded"].notna()].assign(p_expand=p_expand)
        sizes = learn_sizes(history, settings.horizon_days)
        acc = account_expectations(book, preds[ModelName.expansion][cutoff], preds[ModelName.churn][cutoff], sizes)
        raw = forecast(acc, sizes, seed=seed + k, draws=draws)
        disp = dispersion(pd.concat(track, ignore_index=True) if track else None, cutoff, settings.horizon_days)
        fc = calibrate(raw, disp).set_index("group")
        truth = actuals(book)
        track.append(residuals(raw, truth, cutoff))  # read only by later cut-offs once this horizon has passed
        naive_last = naive(frame, cutoff, book, 1)
        naive_mean = naive(frame, cutoff, book, NAIVE_PERIODS)
        compared = naive_last is not None and naive_mean is not None  # a year of history: all methods ran
        # the live choice's naive mean is over up to four periods (fewer in the first year), so that the default has
        # a record as soon as the last period's rates do; where four exist it is the comparator itself
        naive_upto = naive_mean if naive_mean is not None else naive(frame, cutoff, book, NAIVE_PERIODS, min_periods=1)
        for method, f in (("model", fc), ("naive_last", naive_last), ("naive_mean4", naive_upto)):
            if f is not None:
                base.append(long_rows(cutoff, method, f, truth))
        live = live_at(pd.concat(base, ignore_index=True), cand, cutoff, frame, fc, settings.horizon_days,
                       pd.concat(served_rows, ignore_index=True) if served_rows else None)
        cand = pd.concat([cand, live[1]], ignore_index=True) if len(cand) else live[1]
        served = live[0].set_index("group")
        served_rows.append(long_rows(cutoff, "live", served, truth))
        for method, f in (("model", fc), ("model_draws_only", raw.set_index("group")), ("naive_last", naive_last),
                          ("naive_mean4", naive_mean), ("live", served)):
            if f is not None:
                out.extend(_row(cutoff, g, method, f.loc[g], truth.loc[g]) | {"all_methods": compared} for g in truth.index)
    return pd.DataFrame(out), pd.concat(base, ignore_index=True) if base else pd.DataFrame(columns=TRACK)


def naive_record(frame: pd.DataFrame, before: pd.Timestamp) -> pd.DataFrame:
    """Both naive forecasts (the naive mean over up to four periods) as ``TRACK`` rows at every month end of ``frame``
    before ``before`` that has a complete period behind it, beside what happened where the horizon is complete.

    The naive forecasts need no model, so their record can start a year or more before the model's out-of-time one:
    the choice between the two simple answers (``training.forecast_choice``) reads it."""
    out = []
    for day in sorted(pd.to_datetime(frame["as_of"]).unique()):
        if day >= before:
            break
        book = frame.loc[pd.to_datetime(frame["as_of"]) == day]
        truth = actuals(book) if book["expanded"].notna().all() else None
        for method, periods in (("naive_last", 1), ("naive_mean4", NAIVE_PERIODS)):
            f = naive(frame, day, book, periods, min_periods=1)
            if f is not None:
                out.append(long_rows(day, method, f, truth))
    return pd.concat(out, ignore_index=True) if out else pd.DataFrame(columns=TRACK)


def live_at(track: pd.DataFrame, past: pd.DataFrame, cutoff: pd.Timestamp, frame: pd.DataFrame, model: pd.DataFrame,
            horizon_days: int, served: pd.DataFrame | None) -> tuple[pd.DataFrame, pd.DataFrame, pd.DataFrame]:
    """What the live forecast serves at ``cutoff`` (``training.forecast_choice``), its candidates there and the choice.

    ``track`` holds the base methods' rows up to and at ``cutoff``, ``past`` the candidates of earlier cut-offs,
    ``model`` the model's table by group and ``served`` what served before (its record calibrates the interval).
    """
    now = candidates_at(track, past, cutoff, horizon_days)
    present: dict[tuple[str, str], list[str]] = {}
    for r in now[["group", "measure", "method"]].itertuples(index=False):
        present.setdefault((r.group, r.measure), []).append(r.method)
    choice = choose(past, present, cutoff, horizon_days)
    spread = period_spread(period_rates(frame, cutoff, NAIVE_PERIODS))
    return serve(now, past, choice, spread, horizon_days, model_table=model, live=served), now, choice


def _row(cutoff: pd.Timestamp, group: str, method: str, f: pd.Series, t: pd.Series) -> dict:
    row = {"cutoff": cutoff.date(), "group": group, "method": method, "starting_arr": t["starting_arr"],
           "expansion_forecast": f["expansion_arr"], "expansion_actual": t["expansion_arr"],
           "expansion_ape_pct": 100 * abs(f["expansion_arr"] - t["expansion_arr"]) / t["expansion_arr"]
           if t["expansion_arr"] > 0 else np.nan,
           "expansion_error": f["expansion_arr"] - t["expansion_arr"],  # currency: exists when the actual is 0
           "expansion_error_pts": 100 * (f["expansion_arr"] - t["expansion_arr"]) / t["starting_arr"],
           "nrr_forecast": f["nrr_pct"], "nrr_actual": t["nrr_pct"], "nrr_error_pts": f["nrr_pct"] - t["nrr_pct"],
           "track_record": f.get("track_record", np.nan),
           "expansion_method": f.get("expansion_arr_method", method), "nrr_method": f.get("nrr_pct_method", method)}
    for level in (80, 95):
        for m, key in (("expansion_arr", "expansion"), ("nrr_pct", "nrr")):
            lo, hi = f.get(f"{m}_low{level}", np.nan), f.get(f"{m}_high{level}", np.nan)
            row[f"{key}_low{level}"], row[f"{key}_high{level}"] = lo, hi
            row[f"{key}_in{level}"] = bool(lo <= t[m] <= hi) if not np.isnan(lo) else None
    return row


def footing(part: pd.DataFrame) -> dict:
    """What an error figure rests on: MdAPE over the cut-offs whose actual is not 0 (and how many are), the median
    absolute error in points of starting ARR over every cut-off (it exists at an actual of 0), the signed bias
    (median signed % error, and cut-offs above the actual), the NRR error."""
    ape = part["expansion_ape_pct"].dropna()
    signed = (100 * part["expansion_error"] / part["expansion_actual"].where(part["expansion_actual"] > 0)).dropna()
    return {"expansion_mdape_pct": float(ape.median()) if len(ape) else np.nan, "mdape_cutoffs": len(ape),
            "zero_actual_cutoffs": int((part["expansion_actual"] <= 0).sum()),
            "expansion_mdae_pts": float(part["expansion_error_pts"].abs().median()),
            "expansion_mae": float(part["expansion_error"].abs().mean()),
            "expansion_bias_pct": float(signed.median()) if len(signed) else np.nan,
            "expansion_above": int((part["expansion_error"] > 0).sum()),
            "nrr_mae_pts": float(part["nrr_error_pts"].abs().mean()),
            "nrr_bias_pts": float(part["nrr_error_pts"].median())}


def summarize_backtest(results: pd.DataFrame) -> pd.DataFrame:
    """Per window, group and method: cut-offs, the errors with their footing (``footing``), interval hit rates.

    ``segments`` pools the segments' rows (cut-offs x segments); hit rates carry a 95 % Wilson interval (``_ci``).
    Two windows: ``common``, the cut-offs where every method ran (a year of history, for the trailing mean of four
    periods), where the methods are compared; and ``every``, each method over every cut-off it ran at, where an
    interval's hit rate rests on the most cut-offs it can (the model's are out of time at each).
    """
    out = []
    for window, rows_ in (("common", results.loc[results["all_methods"]]), ("every", results)):
        segments = rows_.loc[rows_["group"] != ALL].assign(group=SEGMENTS)  # the targets count cut-offs x segments
        for (g, method), part in pd.concat([rows_, segments]).groupby(["group", "method"], sort=False):
            row = {"window": window, "group": g, "method": method, "cutoffs": len(part)} | footing(part)
            for level in (80, 95):
                for key in ("expansion", "nrr"):
                    hits = part[f"{key}_in{level}"].dropna()
                    row[f"{key}_in{level}_pct"] = 100 * float(hits.mean()) if len(hits) else np.nan
                    row[f"{key}_in{level}_held"] = int(hits.sum()) if len(hits) else 0
                    row[f"{key}_in{level}_trials"] = len(hits)
                    row[f"{key}_in{level}_ci"] = wilson(int(hits.sum()), len(hits))  # percent
            out.append(row)
    return pd.DataFrame(out)


__all__ = ["backtest_forecast", "backtest_with_record", "naive_record", "period_rates", "oot_probability", "summarize_backtest", "contraction_mrr", "actuals", "naive", "Sizes", "point_forecast"]
