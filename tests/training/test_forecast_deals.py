"""What open deals turn into: learned from past expanders, by deal amount, and used by the forecast."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from training.forecast import Sizes, account_expectations, forecast, learn_sizes
from training.forecast_deals import DealOutcomes


def _realisation(amount: np.ndarray) -> np.ndarray:
    """Small deals grow into larger orders, large ones close trimmed: 1.6 at $1k falling to 0.6 at $100k."""
    return 1.6 - 0.5 * np.log10(amount / 1000.0)


def _past_deal_expanders(rng: np.random.Generator, n: int = 3000) -> pd.DataFrame:
    amount = np.exp(rng.uniform(np.log(1000), np.log(100_000), n))
    realised = amount * _realisation(amount) * rng.lognormal(-0.02, 0.2, n)
    return pd.DataFrame({"segment": rng.choice(["smb", "enterprise"], n), "arr": amount * 5, "expanded": 1.0,
                         "expansion_mrr": realised / 12, "open_expansion_amount_usd": amount,
                         "contracted": 0.0, "contraction_mrr": 0.0})


def test_the_ratio_follows_the_deals_amount_and_the_draws_average_to_it():
    rng = np.random.default_rng(4)
    deals = DealOutcomes.learn(_past_deal_expanders(rng))
    amounts = np.array([1500.0, 10_000.0, 90_000.0, 100_000.0])  # the last at the top edge of the past range
    expected = deals.expected_ratio(amounts)
    # a window of ceil(sqrt(3000)) = 55 deals with 20 % noise: about 3 % standard error, up to twice that where the
    # line is read at the window's end (the top of the range); 10 % is three of them
    assert expected == pytest.approx(_realisation(amounts), rel=0.1)
    draws = np.stack([deals.draw(amounts, rng) for _ in range(4000)])
    assert draws.mean(axis=0) == pytest.approx(expected, rel=0.02)
    assert (draws.std(axis=0) > 0.05).all()  # the outcome is uncertain, not the deal's amount taken as given


def test_no_past_deal_leaves_the_amount_as_given():
    assert DealOutcomes().expected_ratio(np.array([5000.0])).tolist() == [1.0]
    assert DealOutcomes.learn(pd.DataFrame({"expansion_mrr": [10.0]})).ratios.size == 0


def test_the_forecast_expects_what_deals_of_that_size_turned_into():
    rng = np.random.default_rng(8)
    history = pd.concat([_past_deal_expanders(rng),  # plus accounts that expanded without a deal, and ones that did not
                         pd.DataFrame({"segment": "smb", "arr": 2000.0, "expanded": [1.0, 0.0] * 50, "expansion_mrr": 50.0,
                                       "open_expansion_amount_usd": 0.0, "contracted": 0.0, "contraction_mrr": 0.0})])
    sizes = learn_sizes(history)
    assert len(sizes.deals.ratios) == 3000  # only the expanders that had a deal
    book = pd.DataFrame({"account_id": ["small", "large", "none"], "segment": ["smb", "enterprise", "smb"],
                         "arr": [10_000.0, 400_000.0, 2000.0], "open_expansion_amount_usd": [2000.0, 80_000.0, 0.0]})
    acc = account_expectations(book, np.array([0.5, 0.5, 0.2]), np.zeros(3), sizes)
    assert acc["expansion_size"].iloc[:2].to_numpy() == pytest.approx(
        [2000 * _realisation(np.array(2000.0)), 80_000 * _realisation(np.array(80_000.0))], rel=0.1)
    table = forecast(acc, sizes, seed=1, draws=4000).set_index("group")
    assert table.loc["all", "expansion_arr"] == pytest.approx((0.5 * acc["expansion_size"].iloc[:2]).sum()
                                                            + 0.2 * acc["expansion_size"].iloc[2])
    assert table.loc["enterprise", "expansion_arr_draw_sd"] > 0


def test_sizes_without_deal_history_draw_the_amount_itself():
    sizes = Sizes(expansion_ratios={"smb": np.array([0.2])}, contraction_rate={"smb": 0.0},
                  contraction_ratios={"smb": np.zeros(0)})
    book = pd.DataFrame({"account_id": ["a"], "segment": ["smb"], "arr": [1000.0], "open_expansion_amount_usd": [700.0]})
    acc = account_expectations(book, np.array([1.0]), np.zeros(1), sizes)
    table = forecast(acc, sizes, seed=0, draws=200).set_index("group")
    assert table.loc["all", "expansion_arr_low95"] == table.loc["all", "expansion_arr_high95"] == 700.0
