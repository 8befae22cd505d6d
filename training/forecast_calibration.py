"""Interval calibration from the forecast's own track record: past forecasts set against what happened.

The Monte Carlo of ``training.forecast`` takes accounts as independent given their
probabilities and sizes. A company's totals need not behave so. Errors that all accounts
share (a quarter when the whole book expands less than its probabilities say) make the
totals *more* variable than the draws; errors that offset (quarters with more expanders but
smaller expansions) make them *less* variable. One forecast cannot show either. Past
forecasts, set against what happened, show both.

Per group and measure, every past forecast whose horizon has passed gives a standardised
error ``z = (actual - point) / draw_sd``, where ``draw_sd`` is the sd of that forecast's own
uncalibrated draws. The dispersion ``phi = mean(z^2)`` is 1 when the draws are right. The
interval ends then move away from the point (or toward it) by the factor
``sqrt(phi) * t_nu(q) / z(q)``. This is the textbook prediction interval when the variance
is estimated from residuals: the estimated scale, with Student's t on ``nu`` degrees of
freedom in place of the normal quantile, so a scale read from few residuals widens the
interval instead of trusting the estimate.

Forecasts made a month apart over a 90-day horizon overlap, so their errors are correlated.
Two forecasts ``d`` days apart share ``max(0, 1 - d / H)`` of their horizon. For normal
errors, the variance of ``mean z^2`` is ``2 sum_ij rho_ij^2 / n^2``, so the effective count
is ``nu = n^2 / sum_ij rho_ij^2``. That is ``n`` for forecasts a horizon apart and about
``n / 2.1`` for monthly ones. Below ``MIN_EFFECTIVE`` effective residuals the draws stand
as they are, and the table says so.

Nothing here is fitted to a particular company: ``phi`` and ``nu`` are read from the track
record of whichever company the forecast runs on. Pure: frames in, frames out.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
from scipy import stats

from training.forecast import LEVELS, MEASURES

# t on fewer than 2 degrees of freedom has no variance; below that the track record is too short to read
MIN_EFFECTIVE = 2.0


def residuals(table: pd.DataFrame, actual: pd.DataFrame, as_of: pd.Timestamp) -> pd.DataFrame:
    """Standardised errors of one past forecast: ``table`` (``training.forecast.forecast``: group, point and
    ``{measure}_draw_sd``) against ``actual`` (indexed by group, one column per measure)."""
    long = [{"as_of": pd.Timestamp(as_of), "group": r["group"], "measure": m, "forecast": r[m],
             "draw_sd": r.get(f"{m}_draw_sd", np.nan), "actual": actual.loc[r["group"], m]}
            for r in table.to_dict("records") if r["group"] in actual.index for m in MEASURES]
    return standardised(pd.DataFrame(long, columns=["as_of", "group", "measure", "forecast", "draw_sd", "actual"]))


def standardised(past: pd.DataFrame) -> pd.DataFrame:
    """``z = (actual - forecast) / draw_sd`` of past forecasts (``as_of, group, measure, forecast, draw_sd, actual``),
    the rows whose draw sd is unknown or zero left out."""
    sd = pd.to_numeric(past["draw_sd"], errors="coerce").to_numpy(dtype=float)
    z = (past["actual"].to_numpy(dtype=float) - past["forecast"].to_numpy(dtype=float)) / np.where(sd > 0, sd, np.nan)
    out = pd.DataFrame({"as_of": pd.to_datetime(past["as_of"]), "group": past["group"].astype(str),
                        "measure": past["measure"].astype(str), "z": z})
    return out.loc[np.isfinite(z)].reset_index(drop=True)


def effective_count(dates: pd.Series, horizon_days: int) -> float:
    """``n^2 / sum_ij rho_ij^2`` with ``rho_ij = max(0, 1 - |d_i - d_j| / H)``: the independent residuals they are worth."""
    t = pd.to_datetime(pd.Series(dates)).to_numpy(dtype="datetime64[D]").astype(np.int64).astype(float)
    if not len(t):
        return 0.0
    rho = np.clip(1.0 - np.abs(t[:, None] - t[None, :]) / float(horizon_days), 0.0, 1.0)
    return float(len(t) ** 2 / (rho ** 2).sum())


def dispersion(track: pd.DataFrame, as_of: pd.Timestamp, horizon_days: int) -> pd.DataFrame:
    """Per group and measure: residuals due by ``as_of`` (horizon passed), their effective count, ``phi`` and
    the factor applied to each interval's distance from the point (1 where the track record is too short)."""
    cols = ["group", "measure", "residuals", "effective", "phi", *(f"scale{level}" for level in LEVELS)]
    if track is None or track.empty:
        return pd.DataFrame(columns=cols)
    when = pd.to_datetime(track["as_of"])
    due = track.loc[when + pd.Timedelta(days=horizon_days) <= pd.Timestamp(as_of)]
    out = []
    for (g, m), part in due.groupby(["group", "measure"], sort=False):
        nu, phi = effective_count(part["as_of"], horizon_days), float(np.mean(part["z"] ** 2))
        row = {"group": g, "measure": m, "residuals": len(part), "effective": nu, "phi": phi}
        for level in LEVELS:
            q = 0.5 + level / 200
            row[f"scale{level}"] = (float(np.sqrt(phi) * stats.t.ppf(q, nu) / stats.norm.ppf(q))
                                    if nu >= MIN_EFFECTIVE else 1.0)
        out.append(row)
    return pd.DataFrame(out, columns=cols)


def calibrate(table: pd.DataFrame, disp: pd.DataFrame) -> pd.DataFrame:
    """``table`` with every interval end moved from the point by its group's and measure's factor.

    Adds ``track_record`` per group: the effective count of past expansion forecasts behind the factor
    (0 when none is due), so a reader sees whether the intervals are the raw draws or calibrated.
    """
    out = table.copy()
    factors = {(r["group"], r["measure"]): r for r in disp.to_dict("records")}
    out["track_record"] = [float(factors.get((g, "expansion_arr"), {}).get("effective", 0.0)) for g in out["group"]]
    for m in MEASURES:
        for level in LEVELS:
            s = np.array([float(factors.get((g, m), {}).get(f"scale{level}", 1.0)) for g in out["group"]])
            for end in ("low", "high"):
                col = f"{m}_{end}{level}"
                out[col] = np.where(s == 1.0, out[col], out[m] + s * (out[col] - out[m]))  # 1: the draws' ends exactly
    return out


__all__ = ["MIN_EFFECTIVE", "calibrate", "dispersion", "effective_count", "residuals", "standardised"]
