"""The forecast and its method choice on a second generator written from a different description.

``features.synth_alt`` differs from the project's ``features.synth`` in its mechanics, not its
tables: expansions are seat true-ups at the contract anniversary (plus mid-term add-ons when
users overrun seats by 15 % and upgrades at 90 % of a quota), not monthly hazards driven by a
latent momentum; churn and seat trims happen only at renewal and follow seat utilisation, not
a latent health; there is one product (no cross-sell) and no opportunities or tickets; and a
quarterly climate moves the number of expanders and their size in opposite directions. The
project's generator is covered by ``test_forecast.py::test_backtest_on_a_generated_company``.
"""

from __future__ import annotations

import datetime as dt

import numpy as np
import pandas as pd
import pytest

from features.config import Settings

AS_OF = dt.date(2026, 6, 30)


@pytest.fixture(scope="module")
def alt_frame(tmp_path_factory: pytest.TempPathFactory) -> pd.DataFrame:
    from features.build import build_features
    from features.io import open_data
    from features.movements import movements
    from features.spine import month_ends
    from features.synth_alt import generate_alt
    from training.forecast_backtest import contraction_mrr

    out = tmp_path_factory.mktemp("alt")
    generate_alt(out, accounts=300, months=18, seed=2, as_of=AS_OF)
    source = open_data(out)
    try:
        first = source.con.execute("SELECT min(date) FROM usage_daily").fetchone()[0]
        frame = build_features(source, month_ends(first, AS_OF), Settings(_env_file=None))
        moves = movements(source.ibis().table("subscriptions")).execute()
    finally:
        source.close()
    frame["contraction_mrr"] = contraction_mrr(moves, frame, 90).to_numpy()
    return frame


@pytest.mark.slow
def test_the_forecast_and_its_choice_run_on_other_mechanics(alt_frame: pd.DataFrame) -> None:
    from features.registry import categorical_features, feature_names
    from training.forecast import period_shocks
    from training.forecast_backtest import backtest_with_record, summarize_backtest
    from training.forecast_choice import CANDIDATES

    results, record = backtest_with_record(alt_frame, feature_names(), categorical_features(), Settings(_env_file=None),
                                           max_rounds=20, draws=200)
    live = results.loc[results["method"] == "live"]
    assert len(live) and set(live["expansion_method"]) <= set(CANDIDATES)
    assert set(record["method"]) == {"model", "naive_last", "naive_mean4"} and record["actual"].notna().all()
    ordered = live.sort_values("cutoff")
    first = ordered.loc[ordered["cutoff"] == ordered["cutoff"].min()]
    assert set(first["expansion_method"]) <= {"naive_mean4", "naive_last"}  # the model has no record yet: a simple answer
    assert (live["expansion_low95"] <= live["expansion_low80"]).all()
    assert (live["expansion_low80"] <= live["expansion_high80"]).all()
    summary = summarize_backtest(results)
    assert (summary["mdape_cutoffs"] + summary["zero_actual_cutoffs"] == summary["cutoffs"]).all()
    # the count-size pairing is read from this company's own periods (renewal-timed expansions, a quarterly climate)
    history = alt_frame.loc[alt_frame["expanded"].notna()]
    shocks = period_shocks(history)
    assert len(shocks) >= 3 and np.mean(shocks[:, 0] * shocks[:, 1]) == pytest.approx(1.0)


def _capacity_effect(frame: pd.DataFrame) -> tuple[float, float, int]:
    """Mean structure factor of past expansions at capacity and of the others, and the expansions it rests on."""
    from training.forecast import learn_sizes
    from training.forecast_structure import flags

    history = frame.loc[frame["expanded"].notna()].assign(contraction_mrr=frame.get("contraction_mrr", 0.0))
    sizes = learn_sizes(history, 90)
    exp = history.loc[history["expanded"] == 1]
    exp = exp.loc[~(exp["open_expansion_amount_usd"].fillna(0.0) > 0)] if "open_expansion_amount_usd" in exp else exp
    f, at = sizes.structure.factor(exp), flags(exp, 90)[:, 1]
    return float(f[at].mean()), float(f[~at].mean()), int(sizes.structure.counts.sum())


@pytest.mark.slow
def test_the_size_structure_is_read_from_each_companys_own_expansions(alt_frame: pd.DataFrame,
                                                                       feature_frame: pd.DataFrame) -> None:
    """Both generators make an account that uses all it licensed expand by more, by different mechanics (the
    project's: seat growth follows usage month by month; this one: add-ons when users overrun seats by 15 % and upgrades
    at 90 % of a quota, beside the anniversary true-up), so the cells' factors are learned per company and only that
    common direction is asserted (measured: 1.04 against 0.96 here, 1.37 against 0.98 on the project's). The renewal
    cells are each company's own (inside the renewal window against outside: 0.93 / 1.04 here, 0.68 / 1.22 there)."""
    for frame in (alt_frame, feature_frame):
        at, rest, n = _capacity_effect(frame)
        assert n >= 200 and at > rest
