"""Renewal timing, headroom and the account's own history on an expansion's size: learned where they matter, near 1
where they do not, and carried into the forecast's point and draws."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from training.forecast import account_expectations, forecast, learn_sizes
from training.forecast_structure import FLAGS, Structure, cell_codes, learn_structure


def _rows(n: int, seed: int) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    return pd.DataFrame({"months_to_renewal": rng.integers(0, 12, n).astype(float),
                         "seat_utilization_pct": rng.uniform(40, 130, n), "quota_utilization_30d_pct": np.nan,
                         "expansions_past": rng.integers(0, 3, n).astype(float)})


def test_cells_follow_the_three_flags_and_missing_columns_leave_them_off() -> None:
    rows = pd.DataFrame({"months_to_renewal": [1.0, 6.0, np.nan], "seat_utilization_pct": [50.0, 100.0, np.nan],
                         "expansions_past": [0.0, 2.0, np.nan]})
    assert cell_codes(rows, 90).tolist() == [1, 6, 0]  # renewal in 90 days; at capacity + expanded before; nothing known
    assert cell_codes(rows[["months_to_renewal"]], 90).tolist() == [1, 0, 0]
    assert FLAGS == ("renewal_in_horizon", "at_capacity", "expanded_before")


def test_a_renewal_true_up_is_learned_and_no_effect_stays_near_one() -> None:
    rows = _rows(4000, 1)
    rng = np.random.default_rng(2)
    renewal = rows["months_to_renewal"] <= 2
    # expansions at renewal are twice the size of mid-term ones, with a lognormal spread around that
    rel = np.where(renewal, 2.0, 1.0) * rng.lognormal(0, 0.5, len(rows))
    s = learn_structure(rel, rows, 90)
    f = s.factor(rows)
    assert f[renewal.to_numpy()].mean() / f[~renewal.to_numpy()].mean() == pytest.approx(2.0, rel=0.1)
    assert (f * 1).mean() == pytest.approx(1.0, rel=0.05) and np.average(f, weights=rel) > 1  # level kept
    flat = learn_structure(rng.lognormal(0, 0.5, len(rows)), rows, 90)
    assert np.abs(flat.factors - 1).max() < 0.05  # sampling noise is shrunk away
    assert learn_structure(np.array([1.0]), rows.iloc[:1], 90).factors.tolist() == [1.0] * 8


def test_the_structure_moves_the_forecast_point_and_draws_alike() -> None:
    rows = _rows(2000, 3)
    rng = np.random.default_rng(4)
    arr = rng.uniform(5_000, 50_000, len(rows))
    renewal = (rows["months_to_renewal"] <= 2).to_numpy()
    ratio = np.where(renewal, 0.4, 0.1) * rng.lognormal(0, 0.3, len(rows))
    history = rows.assign(account_id=[f"h{i}" for i in range(len(rows))], segment="smb", arr=arr, expanded=1,
                          expansion_mrr=arr * ratio / 12, contracted=0, contraction_mrr=0.0)
    sizes = learn_sizes(history, 90)
    table = sizes.structure.table()
    assert table.loc[table["renewal_in_horizon"], "factor"].min() > table.loc[~table["renewal_in_horizon"], "factor"].max()
    book = pd.DataFrame({"account_id": ["r", "m"], "segment": "smb", "arr": [20_000.0, 20_000.0],
                         "months_to_renewal": [1.0, 8.0], "seat_utilization_pct": 60.0, "expansions_past": 0.0})
    acc = account_expectations(book, np.array([1.0, 1.0]), np.zeros(2), sizes)
    assert acc["expansion_size"].iloc[0] / acc["expansion_size"].iloc[1] == pytest.approx(4.0, rel=0.25)
    one = forecast(acc.iloc[:1], sizes, draws=2000).set_index("group").loc["all"]
    assert one["expansion_arr_low80"] <= acc["expansion_size"].iloc[0] * 1.5  # draws scaled like the point
    assert one["expansion_arr_high80"] >= acc["expansion_size"].iloc[0] * 0.67
    assert isinstance(Structure().factor(book), np.ndarray) and (Structure().factor(book) == 1).all()
