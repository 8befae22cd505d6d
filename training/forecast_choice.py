"""Which forecast serves: per group and measure, the method with the lowest out-of-time error on the company's own past.

The candidates are the model's forecast, two naive forecasts (the last period's rates; the
mean of the last four periods' rates) and an inverse-error blend of the three. Their track
record is a long table (``TRACK``: one row per cut-off, group, measure and base method, with
what happened once the horizon passed), written by the forecast's backtest and read by the
live forecast. Everything at a cut-off reads only rows whose horizon had passed by then.

Errors are in points of starting ARR (``100 * (forecast - actual) / starting ARR``; NRR is
already in points), so a quarter with no expansion at all is scored like any other instead
of being dropped, and errors of a small segment and of the whole book read alike.

- **Bias correction**: a method above (or below) the actual at most past cut-offs, so that a
  two-sided sign test gives p < ``SIGN_LEVEL`` on at least ``MIN_CUTOFFS`` cut-offs, is moved
  by its median past error. The corrected forecast is the candidate.
- **Blend**: the three corrected forecasts weighted by 1 / their mean absolute past error on
  the cut-offs where all three had one.
- **Choice**: a candidate needs ``MIN_CUTOFFS`` past cut-offs with outcomes; until one has
  them, the naive mean of four serves (the last period's rates before a year of history: the
  simple answer is the default). Then the lowest median absolute error over the cut-offs all
  qualifying candidates share wins, ties to the simpler method.
- **Interval**: the served method's own past errors, ``t_nu(q) * rms(error)`` around the
  point, ``nu`` the effective count of overlapping horizons (``forecast_calibration``). While
  ``nu < FLOOR_EFFECTIVE`` the half-width is at least the textbook prediction interval of a
  new period's rate from the last periods' rates (``period_spread``), and the table says so.

Nothing here is fitted to a generator: thresholds are counts and test levels. Pure.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
from scipy import stats

from training.forecast import LEVELS, MEASURES
from training.forecast_calibration import effective_count

BASE = ("model", "naive_last", "naive_mean4")
BLEND = "blend"
CANDIDATES = (*BASE, BLEND)
SIMPLE_FIRST = ("naive_mean4", "naive_last", BLEND, "model")  # the tie-break order
MIN_CUTOFFS = 6  # monthly cut-offs with outcomes: about 3 independent 90-day horizons
SIGN_LEVEL = 0.10
FLOOR_EFFECTIVE = 4.0  # below this many independent horizons of errors, the interval has a floor
TRACK = ["cutoff", "group", "measure", "method", "forecast", "actual", "starting_arr"]


def points(forecast: np.ndarray, actual: np.ndarray, start: np.ndarray, measure: str) -> np.ndarray:
    """Signed error in points of starting ARR (NRR's own points for ``nrr_pct``)."""
    diff = np.asarray(forecast, dtype=float) - np.asarray(actual, dtype=float)
    if measure == "nrr_pct":
        return diff
    s = np.asarray(start, dtype=float)
    return 100 * diff / np.where(s > 0, s, np.nan)


def long_rows(cutoff: pd.Timestamp, method: str, table: pd.DataFrame, actual: pd.DataFrame | None) -> pd.DataFrame:
    """One base method's forecast at ``cutoff`` (indexed by group) as ``TRACK`` rows, beside ``actual`` when known."""
    rows = [{"cutoff": pd.Timestamp(cutoff), "group": g, "measure": m, "method": method, "forecast": float(r[m]),
             "actual": float(actual.loc[g, m]) if actual is not None and g in actual.index else np.nan,
             "starting_arr": float(r["starting_arr"])} for g, r in table.iterrows() for m in MEASURES]
    return pd.DataFrame(rows, columns=TRACK)


def _due(rows: pd.DataFrame, cutoff: pd.Timestamp, horizon_days: int) -> pd.DataFrame:
    when = pd.to_datetime(rows["cutoff"])
    return rows.loc[(when + pd.Timedelta(days=horizon_days) <= pd.Timestamp(cutoff)) & rows["actual"].notna()]


def _errors(rows: pd.DataFrame, measure: str) -> pd.Series:
    """Signed errors in points, indexed by cut-off."""
    e = points(rows["forecast"], rows["actual"], rows["starting_arr"], measure)
    return pd.Series(e, index=pd.to_datetime(rows["cutoff"]).to_numpy()).dropna()


def bias_shift(errors: pd.Series) -> tuple[float, int, int, float]:
    """(shift in points, cut-offs above the actual, cut-offs, sign-test p): shift is the median error when one side wins."""
    n, above = len(errors), int((errors > 0).sum())
    if n < MIN_CUTOFFS:
        return 0.0, above, n, 1.0
    p = float(stats.binomtest(above, n, 0.5).pvalue)
    return (float(errors.median()) if p < SIGN_LEVEL else 0.0), above, n, p


def _shifted(value: float, shift_pts: float, start: float, measure: str) -> float:
    if measure == "nrr_pct":
        return value - shift_pts
    return max(0.0, value - shift_pts * start / 100)


def candidates_at(track: pd.DataFrame, past: pd.DataFrame, cutoff: pd.Timestamp, horizon_days: int) -> pd.DataFrame:
    """The candidates' forecasts at ``cutoff``: ``track`` base rows there, bias-corrected, and their blend.

    ``past`` holds earlier candidate rows (this function's output at earlier cut-offs), read for the blend's weights.
    Adds ``shift_pts`` (the correction applied) to the ``TRACK`` columns.
    """
    when = pd.to_datetime(track["cutoff"])
    now = track.loc[when == pd.Timestamp(cutoff)]
    due_base = _due(track, cutoff, horizon_days)
    due_cand = _due(past, cutoff, horizon_days) if len(past) else past
    out = []
    for (g, m), part in now.groupby(["group", "measure"], sort=False):
        corrected = {}
        for r in part.to_dict("records"):
            mine = due_base.loc[(due_base["group"] == g) & (due_base["measure"] == m) & (due_base["method"] == r["method"])]
            shift = bias_shift(_errors(mine, m))[0]
            corrected[r["method"]] = _shifted(r["forecast"], shift, r["starting_arr"], m)
            out.append({**r, "forecast": corrected[r["method"]], "shift_pts": shift})
        if set(BASE) <= set(corrected) and len(due_cand):
            mine = due_cand.loc[(due_cand["group"] == g) & (due_cand["measure"] == m)]
            errs = {k: _errors(mine.loc[mine["method"] == k], m).abs() for k in BASE}
            common = sorted(set.intersection(*(set(e.index) for e in errs.values())))
            if common:
                w = {k: 1 / max(float(errs[k].loc[common].mean()), 1e-9) for k in BASE}
                value = sum(w[k] * corrected[k] for k in BASE) / sum(w.values())
                first = part.iloc[0]
                out.append({"cutoff": pd.Timestamp(cutoff), "group": g, "measure": m, "method": BLEND, "forecast": value,
                            "actual": first["actual"], "starting_arr": first["starting_arr"], "shift_pts": 0.0})
    return pd.DataFrame(out, columns=[*TRACK, "shift_pts"])


def candidate_history(track: pd.DataFrame, horizon_days: int) -> pd.DataFrame:
    """``candidates_at`` at every cut-off of ``track`` in order, each reading only the ones before it."""
    past = pd.DataFrame(columns=[*TRACK, "shift_pts"])
    for cutoff in sorted(pd.to_datetime(track["cutoff"]).unique()):
        now = candidates_at(track, past, cutoff, horizon_days)
        past = pd.concat([past, now], ignore_index=True) if len(past) else now
    return past


def choose(past: pd.DataFrame, present: dict[tuple[str, str], list[str]], cutoff: pd.Timestamp,
           horizon_days: int) -> pd.DataFrame:
    """Per (group, measure) of ``present`` (the candidates forecasting at ``cutoff``): the method in force and its record.

    Columns: group, measure, method, past_cutoffs, past_error_pts (median absolute error), past_bias_pts (median
    signed error), above (cut-offs above the actual), reason.
    """
    due = _due(past, cutoff, horizon_days) if len(past) else past
    rows = []
    for (g, m), methods in present.items():
        mine = due.loc[(due["group"] == g) & (due["measure"] == m)] if len(due) else due
        errs = {k: _errors(mine.loc[mine["method"] == k], m) for k in methods} if len(mine) else {k: pd.Series(dtype=float) for k in methods}
        ok = [k for k in methods if len(errs[k]) >= MIN_CUTOFFS]
        fallback = next((k for k in ("naive_mean4", "naive_last", "model") if k in methods), methods[0])
        if not ok:
            pick, reason = fallback, f"fewer than {MIN_CUTOFFS} past cut-offs with outcomes"
            common = list(errs[pick].index)
        else:
            common = sorted(set.intersection(*(set(errs[k].index) for k in ok)))
            score = {k: float(errs[k].loc[common].abs().median()) for k in ok}
            pick = min(sorted(ok, key=SIMPLE_FIRST.index), key=lambda k: score[k])
            reason = "lowest median error over " + ", ".join(f"{k} {score[k]:.2f}" for k in sorted(ok, key=SIMPLE_FIRST.index))
        e = errs[pick].loc[common] if len(common) else errs[pick]
        rows.append({"group": g, "measure": m, "method": pick, "past_cutoffs": len(e),
                     "past_error_pts": float(e.abs().median()) if len(e) else np.nan,
                     "past_bias_pts": float(e.median()) if len(e) else np.nan, "above": int((e > 0).sum()),
                     "reason": reason})
    return pd.DataFrame(rows)


def period_spread(rates: pd.DataFrame) -> pd.DataFrame:
    """Per group and measure: sd (points) of the past periods' rates and how many (``rates``: period, group, measure, pts)."""
    out = rates.groupby(["group", "measure"])["pts"].agg(sd="std", periods="count").reset_index()
    return out


def interval(errors: pd.Series, spread: tuple[float, int] | None, horizon_days: int) -> tuple[dict[int, float], str, float]:
    """Half-widths in points per level from the past errors (``t_nu * rms``), floored while the record is short.

    Returns ({level: half-width points}, basis, effective count)."""
    nu = effective_count(pd.Series(errors.index), horizon_days) if len(errors) else 0.0
    rms = float(np.sqrt(np.mean(errors.to_numpy() ** 2))) if len(errors) else np.nan
    sd, periods = spread if spread is not None else (np.nan, 0)
    half, basis = {}, "track record"
    for level in LEVELS:
        q = 0.5 + level / 200
        own = rms * float(stats.t.ppf(q, nu)) if nu >= 2 and np.isfinite(rms) else np.nan
        floor = (sd * float(stats.t.ppf(q, periods - 1)) * np.sqrt(1 + 1 / periods)
                 if periods >= 2 and np.isfinite(sd) else np.nan)
        if nu < FLOOR_EFFECTIVE and np.isfinite(floor) and not own >= floor:
            half[level], basis = floor, f"floor: spread of the last {periods} periods' rates ({nu:.1f} independent horizons of errors)"
        else:
            half[level] = own
    return half, basis, nu


def serve(now: pd.DataFrame, past: pd.DataFrame, choice: pd.DataFrame, spread: pd.DataFrame,
          horizon_days: int, model_table: pd.DataFrame | None = None) -> pd.DataFrame:
    """The served table: one row per group, every measure's point and 80 % / 95 % ends from the chosen method, and,
    per measure, ``{m}_method``, ``{m}_past_error_pts``, ``{m}_past_cutoffs``, ``{m}_bias_pts``, ``{m}_shift_pts``,
    ``{m}_interval``. ``now`` holds the candidates at the cut-off (``candidates_at``). With neither a track record
    nor a floor, the half-width of the model's own (draws') interval from ``model_table`` (indexed by group) stands."""
    cutoff = pd.to_datetime(now["cutoff"]).max()
    due = _due(past, cutoff, horizon_days) if len(past) else past
    sp = {(r["group"], r["measure"]): (r["sd"], int(r["periods"])) for r in spread.to_dict("records")}
    out: dict[str, dict] = {}
    for c in choice.to_dict("records"):
        g, m, k = c["group"], c["measure"], c["method"]
        r = now.loc[(now["group"] == g) & (now["measure"] == m) & (now["method"] == k)].iloc[0]
        mine = due.loc[(due["group"] == g) & (due["measure"] == m) & (due["method"] == k)] if len(due) else due
        errs = _errors(mine, m) if len(mine) else pd.Series(dtype=float)
        half, basis, _ = interval(errs, sp.get((g, m)), horizon_days)
        scale = 1.0 if m == "nrr_pct" else r["starting_arr"] / 100
        row = out.setdefault(g, {"group": g, "starting_arr": r["starting_arr"]})
        row[m] = r["forecast"]
        own = model_table is not None and g in model_table.index
        for level in LEVELS:
            h = half[level] * scale
            if not np.isfinite(h) and own:
                basis = "the model's draws (no track record and too few past periods for a floor yet)"
                point = model_table.loc[g, m]
                h = max(point - model_table.loc[g, f"{m}_low{level}"], model_table.loc[g, f"{m}_high{level}"] - point)
            lo = r["forecast"] - h if np.isfinite(h) else np.nan
            row[f"{m}_low{level}"] = max(lo, 0.0) if m != "nrr_pct" and np.isfinite(lo) else lo
            row[f"{m}_high{level}"] = r["forecast"] + h if np.isfinite(h) else np.nan
        row |= {f"{m}_method": k, f"{m}_past_error_pts": c["past_error_pts"], f"{m}_past_cutoffs": c["past_cutoffs"],
                f"{m}_bias_pts": c["past_bias_pts"], f"{m}_shift_pts": r["shift_pts"], f"{m}_interval": basis}
    return pd.DataFrame(list(out.values()))


__all__ = ["BASE", "BLEND", "CANDIDATES", "MIN_CUTOFFS", "TRACK", "bias_shift", "candidate_history", "candidates_at",
           "choose", "interval", "long_rows", "period_spread", "points", "serve"]
