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
  ``MIN_CUTOFFS`` cut-offs, is moved by its median past error. The test counts the
  independent horizons the cut-offs are worth, as the choice below does: a forecast above
  the actual at every one of 6 monthly cut-offs (about 3 independent 90-day horizons) is
  not yet evidence of a bias; at about 10 it is. The corrected forecast is the
  candidate. The naive forecasts stay as they are: they are the simple answer.
- **Blend**: the three corrected forecasts weighted by 1 / their mean absolute past error on
  the cut-offs where all three had one.
- **Choice**: the naive mean (of the last four periods' rates, or of those there are in the
  first year) serves until it has ``MIN_CUTOFFS`` past cut-offs with outcomes: nothing leaves
  the simple answer before it can be compared with it. Then, among the candidates with that
  many, the lowest median absolute error over the cut-offs they share wins, ties to the
  simpler method; a winner other than the simple answer in force (below) serves only if it
  missed by less than that answer beyond noise (``_beats``): a one-sided sign test whose count is the
  *independent* horizons the cut-offs are worth (monthly cut-offs of a 90-day horizon
  overlap, so six of them are about two and a half independent comparisons, and counting
  them as six made lucky runs look like evidence), at ``SWITCH_LEVEL`` divided by the number
  of challengers compared (the best of two looks better than it is). A perfect record
  therefore needs about five independent horizons (some 15 monthly cut-offs) to leave the
  simple answer for the model or the blend.
- **The simple answer is the naive mean or the last period's rates**, whichever the two's
  own record favours: the last period's rates replace the mean when they missed by less
  beyond noise (the same sign test, at ``SWITCH_LEVEL`` undivided: one comparison, between
  two simple answers) over every past cut-off both have. The naive forecasts need no model,
  so their record is replayed at every month end the data allow
  (``training.forecast_backtest.naive_record``), a year or more before the model has one:
  a company whose rates keep growing, which the mean of four periods lags, is seen sooner
  (measured in benchmarks/README.md: not always soon enough within 24 months).

The interval of whatever serves is ``training.forecast_serve``. Nothing here is fitted to a
generator: thresholds are counts and test levels. Pure.
"""

from __future__ import annotations

import math
import numpy as np
import pandas as pd
from scipy import special

from training.forecast import MEASURES
from training.forecast_calibration import effective_count

BASE = ("model", "naive_last", "naive_mean4")
BLEND = "blend"
CANDIDATES = (*BASE, BLEND)
DEFAULT = "naive_mean4"  # serves until it has MIN_CUTOFFS past cut-offs to be compared on
NAIVE = (DEFAULT, "naive_last")  # the simple answers: chosen between on their own (longer) record
SIMPLE_FIRST = ("naive_mean4", "naive_last", BLEND, "model")  # the tie-break order
MIN_CUTOFFS = 6  # monthly cut-offs with outcomes: about 3 independent 90-day horizons
SIGN_LEVEL = 0.10
# only the model is corrected: a naive forecast is the simple answer and stays exactly that (measured: correcting the
# naive mean by its one-sided past moved it the wrong way when the trend turned, on 2 of 6 companies)
CORRECTED = ("model",)
SWITCH_LEVEL = 0.10  # leaving the simple answer: sign-test level over independent horizons, split among the challengers
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


def bias_shift(errors: pd.Series | np.ndarray, days: np.ndarray | None = None,
               horizon_days: int = 0) -> tuple[float, int, int, float]:
    """(shift in points, cut-offs above the actual, cut-offs, sign-test p): shift is the median error when one side wins.

    With ``days`` (the cut-offs' days) the two-sided sign test counts the independent horizons the cut-offs are worth
    (``effective_count``: monthly cut-offs of a 90-day horizon overlap), the sides scaled alike, as ``_beats`` does;
    without, every cut-off counts once.
    """
    e = np.asarray(errors, dtype=float)
    n, above = len(e), int((e > 0).sum())
    if n < MIN_CUTOFFS:
        return 0.0, above, n, 1.0
    nu = float(n) if days is None else min(float(n), effective_count(
        pd.Series(np.asarray(days).astype("datetime64[D]")), horizon_days))
    tail = min(above, n - above) * nu / n  # P(as lopsided or more) under a fair coin, both sides
    p = min(1.0, 2 * (1.0 - float(special.betainc(tail + 1, nu - tail, 0.5)))) if tail < nu else 1.0
    return (float(np.median(e)) if p < SIGN_LEVEL else 0.0), above, n, p


def _swap(days_errors: tuple[np.ndarray, np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
    return days_errors[1], days_errors[0]


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


def _beats(challenger: np.ndarray, default: np.ndarray, days: np.ndarray | None = None, horizon_days: int = 0) -> float:
    """One-sided sign test that ``challenger`` missed by less than ``default`` on the same cut-offs (``days``).

    The count is the independent horizons the cut-offs are worth (``effective_count``; every cut-off when ``days`` is
    None), the wins scaled alike: ``P(Bin(nu, 1/2) >= wins * nu / n)``, continuous in ``nu`` by the incomplete beta.
    """
    d = np.abs(challenger) - np.abs(default)
    tied = d == 0
    n, wins = int((~tied).sum()), int((d < 0).sum())
    if not n or not wins:
        return 1.0
    nu = float(n) if days is None else min(float(n), effective_count(pd.Series(days[~tied].astype("datetime64[D]")),
                                                                     horizon_days))
    k = wins * nu / n
    return float(special.betainc(k, nu - k + 1, 0.5)) if k < nu + 1 else 0.0


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
            shift = bias_shift(*_swap(base.errors((g, m, k), cutoff, horizon_days)), horizon_days)[0] if k in CORRECTED else 0.0
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


def _simple(errs: dict[str, tuple[np.ndarray, np.ndarray]], ok: list[str], horizon_days: int) -> tuple[str, str]:
    """The simple answer in force and why: the naive mean, or the last period's rates when, over every past cut-off
    both have, they missed by less beyond noise (one comparison: ``SWITCH_LEVEL`` undivided) and by a lower median."""
    if "naive_last" not in ok or DEFAULT not in ok:
        return DEFAULT, ""
    days, pair = _common(errs, list(NAIVE))
    p = _beats(pair["naive_last"], pair[DEFAULT], days, horizon_days)
    last, mean = (float(np.median(np.abs(pair[k]))) for k in ("naive_last", DEFAULT))
    if p < SWITCH_LEVEL and last < mean:
        return "naive_last", (f"naive_last missed by less than the naive mean over {len(days)} past cut-offs "
                              f"(median {last:.2f} against {mean:.2f}, sign test p = {p:.3f}); ")
    return DEFAULT, ""


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
            simple, why = _simple(errs, ok, horizon_days)
            compared = sorted([simple, *(k for k in ok if k not in NAIVE)], key=SIMPLE_FIRST.index)
            _, common = _common(errs, compared)
            score = {k: float(np.median(np.abs(common[k]))) if len(common[k]) else np.inf for k in compared}
            pick = min(compared, key=lambda k: score[k])
            reason = why + "lowest median error over " + ", ".join(f"{k} {score[k]:.2f}" for k in compared)
            if pick != simple:
                pair_days, pair = _common(errs, [pick, simple])  # every cut-off the two share, not only the blend's
                p, level = _beats(pair[pick], pair[simple], pair_days, horizon_days), SWITCH_LEVEL / (len(compared) - 1)
                if p >= level:
                    pick, reason = simple, reason + (f"; {pick} not better than {simple} beyond noise (sign test "
                                                     f"over independent horizons p = {p:.3f}, needs < {level:.3f})")
            e = errs[pick][1] if pick in NAIVE and pick == simple else common[pick]
        rows.append({"group": g, "measure": m, "method": pick, "past_cutoffs": len(e),
                     "past_error_pts": float(np.median(np.abs(e))) if len(e) else np.nan,
                     "past_bias_pts": float(np.median(e)) if len(e) else np.nan, "above": int((e > 0).sum()),
                     "reason": reason})
    return pd.DataFrame(rows)


__all__ = ["BASE", "BLEND", "CANDIDATES", "MIN_CUTOFFS", "TRACK", "bias_shift", "candidate_history", "candidates_at",
           "choose", "long_rows", "points"]
