"""Interval calibration from the track record: books whose totals are steadier or wilder than independent accounts."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from training.forecast import Sizes, account_expectations, forecast
from training.forecast_calibration import MIN_EFFECTIVE, calibrate, dispersion, effective_count, residuals, standardised

H = 90


def _book(rng: np.random.Generator, n: int = 400) -> tuple[pd.DataFrame, Sizes]:
    """One segment; every expansion adds a fifth of the account's ARR, so only *which* accounts expand varies."""
    sizes = Sizes(expansion_ratios={"smb": np.full(50, 0.2)}, contraction_rate={"smb": 0.0},
                  contraction_ratios={"smb": np.zeros(0)})
    book = pd.DataFrame({"account_id": [f"a{i}" for i in range(n)], "segment": "smb", "arr": rng.lognormal(9, 0.8, n)})
    acc = account_expectations(book, rng.uniform(0.02, 0.3, n), np.zeros(n), sizes)
    return acc, sizes


def _steady_total(acc: pd.DataFrame, rng: np.random.Generator) -> float:
    """Exactly round(sum p) accounts expand each quarter (chosen by p): counts never vary, totals barely."""
    p = acc["p_expand"].to_numpy()
    chosen = rng.choice(len(p), size=int(round(p.sum())), replace=False, p=p / p.sum())
    return float(acc["expansion_size"].to_numpy()[chosen].sum())


def _wild_total(acc: pd.DataFrame, rng: np.random.Generator) -> float:
    """A quarter-wide shock moves every account's chance together (normal, mean 1, sd 0.3)."""
    p = np.clip(acc["p_expand"].to_numpy() * (1 + 0.3 * rng.standard_normal()), 0.0, 1.0)
    return float(acc["expansion_size"].to_numpy()[rng.random(len(p)) < p].sum())


def _held(table: pd.DataFrame, truths: np.ndarray, level: int) -> float:
    row = table.set_index("group").loc["smb"]
    return float(np.mean((truths >= row[f"expansion_arr_low{level}"]) & (truths <= row[f"expansion_arr_high{level}"])))


@pytest.mark.parametrize("process", [_steady_total, _wild_total])
def test_calibrated_intervals_hold_where_the_draws_alone_do_not(process):
    """60 past quarters (a horizon apart, so 60 independent errors) set the width; 400 new quarters test it.

    The draws assume independent accounts: on the steady book they over-cover, on the wild one under-cover.
    Calibrated, both hold within the 70-90 % band at 80 %: the ratio's estimate from 60 errors is good to
    about +-18 % for normal errors (more for the shocked book), the width to about half that (12 of 12 seeds
    of this test held 0.70-0.89 on both books).
    """
    rng = np.random.default_rng(5)
    acc, sizes = _book(rng)
    raw = forecast(acc, sizes, seed=2, draws=4000)
    start = pd.Timestamp("2020-01-31")
    past = []
    for q in range(60):
        as_of = start + pd.Timedelta(days=91 * q)
        truth = pd.DataFrame({"expansion_arr": [process(acc, rng)]}, index=["smb"]).assign(
            contraction_arr=0.0, churned_arr=0.0, nrr_pct=np.nan)
        past.append(residuals(raw, truth, as_of))
    now = start + pd.Timedelta(days=91 * 61)
    disp = dispersion(pd.concat(past), now, H)
    row = disp.set_index(["group", "measure"]).loc[("smb", "expansion_arr")]
    assert row["residuals"] == 60 and row["effective"] == pytest.approx(60)
    calibrated = calibrate(raw, disp)
    truths = np.array([process(acc, rng) for _ in range(400)])
    before, after = _held(raw, truths, 80), _held(calibrated, truths, 80)
    if process is _steady_total:
        assert before > 0.90 and row["phi"] < 0.6  # outside the 70-90 % band, too wide
    else:
        assert before < 0.70 and row["phi"] > 1.5  # outside the band, too narrow
    assert 0.70 <= after <= 0.90, (before, after, row["phi"])
    assert _held(calibrated, truths, 95) >= 0.88
    point = calibrated.set_index("group").loc["smb", "expansion_arr"]
    assert point == raw.set_index("group").loc["smb", "expansion_arr"]  # the point never moves


def test_overlapping_horizons_count_for_less():
    month_ends = pd.Series(pd.date_range("2024-01-31", periods=24, freq="ME"))
    # monthly forecasts of 90 days: neighbours share 2/3 and 1/3 of their horizon, sum of rho^2 per row about 2.1
    assert effective_count(month_ends, H) == pytest.approx(24 / 2.1, rel=0.08)
    quarters = pd.Series(pd.date_range("2024-01-01", periods=8, freq="100D"))
    assert effective_count(quarters, H) == pytest.approx(8)
    assert effective_count(pd.Series([pd.Timestamp("2024-03-31")] * 5), H) == pytest.approx(1)


def test_only_forecasts_whose_horizon_passed_are_read():
    track = pd.DataFrame({"as_of": pd.to_datetime(["2024-01-31", "2024-05-31", "2024-09-30", "2024-12-31"]),
                          "group": "all", "measure": "expansion_arr", "z": [0.5, -0.5, 0.5, 10.0]})
    disp = dispersion(track, pd.Timestamp("2024-12-31"), H).set_index("measure")
    assert disp.loc["expansion_arr", "residuals"] == 3  # the December forecast's outcome is three months away
    assert disp.loc["expansion_arr", "phi"] == pytest.approx(0.25)


def test_a_short_track_record_leaves_the_draws_and_a_middling_one_widens_for_its_own_noise():
    rng = np.random.default_rng(1)
    acc, sizes = _book(rng, 100)
    raw = forecast(acc, sizes, seed=0, draws=500)
    two = pd.DataFrame({"as_of": pd.to_datetime(["2024-01-31", "2024-02-29"]), "group": "smb",
                        "measure": "expansion_arr", "z": [1.0, -1.0]})
    disp = dispersion(two, pd.Timestamp("2025-01-31"), H)
    assert disp["effective"].iloc[0] < MIN_EFFECTIVE and disp["scale80"].iloc[0] == 1.0
    pd.testing.assert_frame_equal(calibrate(raw, disp).drop(columns="track_record"), raw)
    four = pd.DataFrame({"as_of": pd.to_datetime(["2024-01-31", "2024-05-31", "2024-09-30", "2025-01-31"]),
                         "group": "smb", "measure": "expansion_arr", "z": [1.0, -1.0, 1.0, -1.0]})
    scale = dispersion(four, pd.Timestamp("2025-06-30"), H).iloc[0]
    # phi is exactly 1, yet 4 errors cannot pin it down: Student's t on 4 degrees of freedom widens both levels
    assert scale["phi"] == pytest.approx(1.0) and scale["effective"] == pytest.approx(4)
    assert scale["scale80"] == pytest.approx(1.533 / 1.2816, rel=1e-3)
    assert scale["scale95"] == pytest.approx(2.776 / 1.960, rel=1e-3)


def test_stored_rows_without_a_draw_sd_are_left_out():
    past = pd.DataFrame({"as_of": ["2024-01-31"] * 3, "group": ["all", "smb", "smb"],
                         "measure": ["expansion_arr", "expansion_arr", "nrr_pct"], "forecast": [100.0, 50.0, 101.0],
                         "draw_sd": [10.0, None, 0.0], "actual": [120.0, 40.0, 100.0]})
    z = standardised(past)
    assert z[["group", "measure"]].values.tolist() == [["all", "expansion_arr"]] and z["z"].tolist() == [2.0]
