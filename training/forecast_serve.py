"""The served forecast: the chosen method's point with an interval from its own past errors (``forecast_choice``).

- **Interval**: the served method's own past errors, ``t_nu(q) * rms(error)`` around the
  point, ``nu`` the effective count of overlapping horizons (``forecast_calibration``), or
  the same from what the choice served at past cut-offs when that is wider (the winner of a
  comparison looks better in its record than it will be, and the choice switches). While
  ``nu < FLOOR_EFFECTIVE`` the half-width is at least the textbook prediction interval of a
  new period's rate from the last periods' rates (``period_spread``), and the table says so.

Pure: frames in, frames out.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
from scipy import stats

from training.forecast import LEVELS
from training.forecast_calibration import effective_count
from training.forecast_choice import TRACK, _Rows, choose

FLOOR_EFFECTIVE = 4.0  # below this many independent horizons of errors, the interval has a floor


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


__all__ = ["FLOOR_EFFECTIVE", "interval", "period_spread", "serve", "served_history"]
