"""Which forecast serves: per group and measure, the method with the lowest out-of-time error on the company's own past.

The candidates are the model's forecast, two naive forecasts (the last period's rates; the
mean of the last four periods' rates) and an inverse-error blend of the three. Their track
record is a long table (``TRACK``: one row per cut-off, group, measure and base method, with
what happened once the horizon passed), written by the forecast's backtest and read by the
live forecast. Everything at a cut-off reads only rows whose horizon had passed by then.

Errors are in points of starting ARR (``100 * (forecast - actual) / starting ARR``; NRR is
already in points), so a quarter with no expansion at all is scored like any other instead
of being dropped, and errors of a small segment and of the whole book read alike.

- **Bias correction**: the model's forecast, when above (or below) the actual at most past
  cut-offs, so that a two-sided sign test gives p < ``SIGN_LEVEL`` on at least
  ``MIN_CUTOFFS`` cut-offs, is moved by its median past error. The corrected forecast is the
  candidate. The naive forecasts stay as they are: they are the simple answer.
- **Blend**: the three corrected forecasts weighted by 1 / their mean absolute past error on
  the cut-offs where all three had one.
- **Choice**: the naive mean (of the last four periods' rates, or of those there are in the
  first year) serves until it has ``MIN_CUTOFFS`` past cut-offs with outcomes: nothing leaves
  the simple answer before it can be compared with it. Then, among the candidates with that
  many, the lowest median absolute error over the cut-offs they share wins, ties to the
  simpler method; a winner other than the naive mean serves only if it missed by less than
  the naive mean at enough of those cut-offs that a one-sided sign test gives p <
  ``SWITCH_LEVEL`` (it must be better beyond noise, not by a lucky median).
- **Interval**: the served method's own past errors, ``t_nu(q) * rms(error)`` around the
  point, ``nu`` the effective count of overlapping horizons (``forecast_calibration``), or
  the same from what the choice served at past cut-offs when that is wider (the winner of a
  comparison looks better in its record than it will be, and the choice switches). While
  ``nu < FLOOR_EFFECTIVE`` the half-width is at least the textbook prediction interval of a
  new period's rate from the last periods' rates (``period_spread``), and the table says so.

Nothing here is fitted to a generator: thresholds are counts and test levels. Pure.
"""

from __future__ import annotations

import math
import numpy as np
import pandas as pd
from scipy import stats

from training.forecast import LEVELS, MEASURES
from training.forecast_calibration import effective_count

BASE = ("model", "naive_last", "naive_mean4")
BLEND = "blend"
CANDIDATES = (*BASE, BLEND)
DEFAULT = "naive_mean4"  # serves until it has MIN_CUTOFFS past cut-offs to be compared on
SIMPLE_FIRST = ("naive_mean4", "naive_last", BLEND, "model")  # the tie-break order
MIN_CUTOFFS = 6  # monthly cut-offs with outcomes: about 3 independent 90-day horizons
SIGN_LEVEL = 0.10
# only the model is corrected: a naive forecast is the simple answer and stays exactly that (measured: correcting the
# naive mean by its one-sided past moved it the wrong way when the trend turned, on 2 of 6 companies)
CORRECTED = ("model",)
SWITCH_LEVEL = 0.10  # leaving the naive mean needs a challenger that missed by less at that many more cut-offs
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


class _Rows:
    """``TRACK`` rows by (group, measure, method) as numpy arrays (days since epoch, forecast, actual, start, shift):
    the choice reads many small slices, which pandas filtering makes slow."""

    def __init__(self, rows: pd.DataFrame | None) -> None:
        self.by: dict[tuple[str, str, str], dict[str, np.ndarray]] = {}
        if rows is None or not len(rows):
            return
        day = pd.to_datetime(rows["cutoff"]).to_numpy(dtype="datetime64[D]").astype(np.int64)
        shift = rows["shift_pts"].to_numpy(dtype=float) if "shift_pts" in rows else np.zeros(len(rows))
        cols = {"day": day, "forecast": rows["forecast"].to_numpy(dtype=float), "actual": rows["actual"].to_numpy(dtype=float),
                "start": rows["starting_arr"].to_numpy(dtype=float), "shift": shift}
        keys = list(zip(rows["group"].astype(str), rows["measure"].astype(str), rows["method"].astype(str)))
        index: dict[tuple[str, str, str], list[int]] = {}
        for i, k in enumerate(keys):
            index.setdefault(k, []).append(i)
        for k, idx in index.items():
            ix = np.array(idx)
            ix = ix[np.argsort(cols["day"][ix], kind="stable")]
            self.by[k] = {c: v[ix] for c, v in cols.items()}

    def errors(self, key: tuple[str, str, str], cutoff: pd.Timestamp, horizon_days: int) -> tuple[np.ndarray, np.ndarray]:
        """(days, signed errors in points) of ``key``'s rows whose horizon had passed by ``cutoff``."""
        r = self.by.get(key)
        if r is None:
            return np.zeros(0, np.int64), np.zeros(0)
        due = (r["day"] + horizon_days <= _day(cutoff)) & np.isfinite(r["actual"])
        e = points(r["forecast"][due], r["actual"][due], r["start"][due], key[1])
        ok = np.isfinite(e)
        return r["day"][due][ok], e[ok]

    def at(self, key: tuple[str, str, str], cutoff: pd.Timestamp) -> dict[str, float] | None:
        r = self.by.get(key)
        if r is None:
            return None
        hit = np.flatnonzero(r["day"] == _day(cutoff))
        return {c: float(v[hit[-1]]) for c, v in r.items()} if len(hit) else None


def _day(cutoff: pd.Timestamp) -> int:
    return int(np.datetime64(pd.Timestamp(cutoff).date(), "D").astype(np.int64))


def bias_shift(errors: pd.Series | np.ndarray) -> tuple[float, int, int, float]:
    """(shift in points, cut-offs above the actual, cut-offs, sign-test p): shift is the median error when one side wins."""
    e = np.asarray(errors, dtype=float)
    n, above = len(e), int((e > 0).sum())
    if n < MIN_CUTOFFS:
        return 0.0, above, n, 1.0
    tail = min(above, n - above)  # two-sided exact sign test: P(as lopsided or more) under a fair coin
    p = min(1.0, 2 * sum(math.comb(n, i) for i in range(tail + 1)) / 2 ** n)
    return (float(np.median(e)) if p < SIGN_LEVEL else 0.0), above, n, p


def _shifted(value: float, shift_pts: float, start: float, measure: str) -> float:
    if measure == "nrr_pct":
        return value - shift_pts
    return max(0.0, value - shift_pts * start / 100)


def _common(errs: dict[str, tuple[np.ndarray, np.ndarray]], methods: list[str]) -> tuple[np.ndarray, dict[str, np.ndarray]]:
    """The days every one of ``methods`` has an error on, and each one's errors on them."""
    days = errs[methods[0]][0]
    for k in methods[1:]:
        days = np.intersect1d(days, errs[k][0])
    return days, {k: errs[k][1][np.isin(errs[k][0], days)] for k in methods}


def _beats(challenger: np.ndarray, default: np.ndarray) -> float:
    """One-sided exact sign test that ``challenger`` missed by less than ``default`` on the same cut-offs."""
    d = np.abs(challenger) - np.abs(default)
    n, wins = int((d != 0).sum()), int((d < 0).sum())
    if not n:
        return 1.0
    return sum(math.comb(n, i) for i in range(wins, n + 1)) / 2 ** n


def candidates_at(track: pd.DataFrame, past: pd.DataFrame, cutoff: pd.Timestamp, horizon_days: int,
                  _base: _Rows | None = None, _past: _Rows | None = None) -> pd.DataFrame:
    """The candidates' forecasts at ``cutoff``: ``track`` base rows there (the model's bias-corrected), and their blend.

    ``past`` holds earlier candidate rows (this function's output at earlier cut-offs), read for the blend's weights.
    Adds ``shift_pts`` (the correction applied) to the ``TRACK`` columns.
    """
    base = _base or _Rows(track)
    cand = _past or _Rows(past)
    out = []
    for g, m in dict.fromkeys((g, m) for g, m, _ in base.by):
        corrected, first = {}, None
        for k in BASE:
            now = base.at((g, m, k), cutoff)
            if now is None:
                continue
            first = first or now
            shift = bias_shift(base.errors((g, m, k), cutoff, horizon_days)[1])[0] if k in CORRECTED else 0.0
            corrected[k] = _shifted(now["forecast"], shift, now["start"], m)
            out.append((g, m, k, corrected[k], now["actual"], now["start"], shift))
        if len(corrected) == len(BASE):
            days, errs = _common({k: cand.errors((g, m, k), cutoff, horizon_days) for k in BASE}, list(BASE))
            if len(days):
                w = {k: 1 / max(float(np.abs(errs[k]).mean()), 1e-9) for k in BASE}
                value = sum(w[k] * corrected[k] for k in BASE) / sum(w.values())
                out.append((g, m, BLEND, value, first["actual"], first["start"], 0.0))
    frame = pd.DataFrame(out, columns=["group", "measure", "method", "forecast", "actual", "starting_arr", "shift_pts"])
    frame.insert(0, "cutoff", pd.Timestamp(cutoff))
    return frame[[*TRACK, "shift_pts"]]


def candidate_history(track: pd.DataFrame, horizon_days: int) -> pd.DataFrame:
    """``candidates_at`` at every cut-off of ``track`` in order, each reading only the ones before it."""
    base, parts = _Rows(track), []
    cand = _Rows(None)
    for cutoff in sorted(pd.to_datetime(track["cutoff"]).unique()):
        now = candidates_at(track, pd.DataFrame(), cutoff, horizon_days, _base=base, _past=cand)
        parts.append(now)
        for r in now.itertuples(index=False):  # append to the candidate rows without rebuilding them
            key = (r.group, r.measure, r.method)
            old = cand.by.get(key)
            row = {"day": np.array([_day(cutoff)]), "forecast": np.array([r.forecast]), "actual": np.array([r.actual]),
                   "start": np.array([r.starting_arr]), "shift": np.array([r.shift_pts])}
            cand.by[key] = row if old is None else {c: np.concatenate([old[c], row[c]]) for c in row}
    return pd.concat(parts, ignore_index=True) if parts else pd.DataFrame(columns=[*TRACK, "shift_pts"])


def choose(past: pd.DataFrame, present: dict[tuple[str, str], list[str]], cutoff: pd.Timestamp,
           horizon_days: int) -> pd.DataFrame:
    """Per (group, measure) of ``present`` (the candidates forecasting at ``cutoff``): the method in force and its record.

    Columns: group, measure, method, past_cutoffs, past_error_pts (median absolute error), past_bias_pts (median
    signed error), above (cut-offs above the actual), reason.
    """
    rows_ = _Rows(past)
    rows = []
    for (g, m), methods in present.items():
        errs = {k: rows_.errors((g, m, k), cutoff, horizon_days) for k in methods}
        ok = [k for k in methods if len(errs[k][1]) >= MIN_CUTOFFS]
        fallback = next((k for k in (DEFAULT, "naive_last", "model") if k in methods), methods[0])
        if not ok or DEFAULT in methods and DEFAULT not in ok:
            pick, reason = fallback, f"fewer than {MIN_CUTOFFS} past cut-offs with outcomes"
            e = errs[pick][1]
        else:
            ok = sorted(ok, key=SIMPLE_FIRST.index)
            _, common = _common(errs, ok)
            score = {k: float(np.median(np.abs(common[k]))) if len(common[k]) else np.inf for k in ok}
            pick = min(ok, key=lambda k: score[k])
            reason = "lowest median error over " + ", ".join(f"{k} {score[k]:.2f}" for k in ok)
            if pick != DEFAULT and DEFAULT in ok:
                p = _beats(common[pick], common[DEFAULT])
                if p >= SWITCH_LEVEL:
                    pick, reason = DEFAULT, reason + f"; {pick} not better than the naive mean beyond noise (p = {p:.2f})"
            e = common[pick]
        rows.append({"group": g, "measure": m, "method": pick, "past_cutoffs": len(e),
                     "past_error_pts": float(np.median(np.abs(e))) if len(e) else np.nan,
                     "past_bias_pts": float(np.median(e)) if len(e) else np.nan, "above": int((e > 0).sum()),
                     "reason": reason})
    return pd.DataFrame(rows)


def period_spread(rates: pd.DataFrame) -> pd.DataFrame:
    """Per group and measure: sd (points) of the past periods' rates and how many (``rates``: period, group, measure, pts)."""
    out = rates.groupby(["group", "measure"])["pts"].agg(sd="std", periods="count").reset_index()
    return out


def interval(errors: pd.Series, spread: tuple[float, int] | None, horizon_days: int) -> tuple[dict[int, float], str, float]:
    """Half-widths in points per level from the past errors (``t_nu * rms``; ``errors`` indexed by cut-off), floored
    while the record is short. Returns ({level: half-width points}, basis, effective count)."""
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


def served_history(past: pd.DataFrame, horizon_days: int) -> pd.DataFrame:
    """What the choice served at every cut-off of ``past`` (``candidate_history``), as ``TRACK`` rows of method
    ``live``: the record of the choosing itself, switches and all, which ``serve`` widens the interval to."""
    out = []
    for cutoff in sorted(pd.to_datetime(past["cutoff"]).unique()):
        now = past.loc[pd.to_datetime(past["cutoff"]) == cutoff]
        present: dict[tuple[str, str], list[str]] = {}
        for r in now[["group", "measure", "method"]].itertuples(index=False):
            present.setdefault((r.group, r.measure), []).append(r.method)
        picked = choose(past, present, cutoff, horizon_days)[["group", "measure", "method"]]
        out.append(now.merge(picked, on=["group", "measure", "method"]).assign(method="live"))
    return pd.concat(out, ignore_index=True)[TRACK] if out else pd.DataFrame(columns=TRACK)


def serve(now: pd.DataFrame, past: pd.DataFrame, choice: pd.DataFrame, spread: pd.DataFrame,
          horizon_days: int, model_table: pd.DataFrame | None = None, live: pd.DataFrame | None = None) -> pd.DataFrame:
    """The served table: one row per group, every measure's point and 80 % / 95 % ends from the chosen method, and,
    per measure, ``{m}_method``, ``{m}_past_error_pts``, ``{m}_past_cutoffs``, ``{m}_bias_pts``, ``{m}_shift_pts``,
    ``{m}_interval``. ``now`` holds the candidates at the cut-off (``candidates_at``). ``live`` holds what was served
    at past cut-offs (``served_history``): the interval is the wider of the one from the served method's own errors and
    the one from those served errors, since the method with the lowest past error looks better in its record than it
    will be (it was chosen for it) and the choice switches. With neither a track record nor a floor, the half-width of
    the model's own (draws') interval from ``model_table`` (indexed by group) stands."""
    cutoff = pd.to_datetime(now["cutoff"]).max()
    rows_, served = _Rows(past), _Rows(live)
    here = {(r["group"], r["measure"], r["method"]): r for r in now.to_dict("records")}
    sp = {(r["group"], r["measure"]): (r["sd"], int(r["periods"])) for r in spread.to_dict("records")}
    out: dict[str, dict] = {}
    for c in choice.to_dict("records"):
        g, m, k = c["group"], c["measure"], c["method"]
        r = here[(g, m, k)]
        days, e = rows_.errors((g, m, k), cutoff, horizon_days)
        errs = pd.Series(e, index=pd.to_datetime(days.astype("datetime64[D]")))
        half, basis, _ = interval(errs, sp.get((g, m)), horizon_days)
        days, e = served.errors((g, m, "live"), cutoff, horizon_days)
        if len(e):
            wide, wide_basis, _ = interval(pd.Series(e, index=pd.to_datetime(days.astype("datetime64[D]"))), sp.get((g, m)),
                                           horizon_days)
            if all(np.isfinite(wide[level]) and not wide[level] <= half[level] for level in LEVELS):
                half, basis = wide, ("track record of the choice" if wide_basis == "track record" else wide_basis)
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
           "choose", "interval", "long_rows", "period_spread", "points", "serve", "served_history"]
