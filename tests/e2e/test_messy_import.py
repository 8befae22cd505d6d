"""The messy company's raw exports (trials, metered and tiered prices, nested discounts, EUR and GBP customers,
deals whose account is gone) imported back through `expansion import`: MRR per account and month equals the
generator's truth, apart from one documented definition (a metered item's MRR is its last complete period's
invoiced usage, so its first period reads 0 until that period is invoiced)."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import pandas as pd
import pytest
from typer.testing import CliRunner

from features.synth import MessyConfig, generate
from features.synth.raw_messy import mess_raw
from features.synth.raw_shapes import write_raw
from features.synth.truth import mrr_at
from serving.cli import app

pytestmark = pytest.mark.slow

AS_OF = dt.date(2026, 6, 30)


@pytest.fixture(scope="module")
def imported(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path, str]:
    root = tmp_path_factory.mktemp("messy-import")
    generate(root / "gen", accounts=40, months=7, seed=5, as_of=AS_OF, mess=MessyConfig())
    write_raw(root / "gen", root / "raw")
    mess_raw(root / "gen", root / "raw", 5)
    result = CliRunner().invoke(app, ["import", "stripe,salesforce,segment", "--from", str(root / "raw"),
                                      "--out", str(root / "imported"), "--map", str(root / "raw" / "import-map.toml"),
                                      "--currency", "usd", "--rates", str(root / "raw" / "rates.csv"), "--report"])
    assert result.exception is None or isinstance(result.exception, SystemExit), result.output[-3000:]
    assert result.exit_code == 0, result.output[-3000:]
    return root / "gen", root / "imported", result.output


def test_import_defaults_to_the_data_end_and_says_what_it_did(imported) -> None:
    _, out, said = imported
    flat = " ".join(said.split())
    assert f"as of {AS_OF}" in flat  # the newest imported usage day, never the clock
    assert "metered item" in flat and "converted to usd" in flat and "trial" in flat
    assert "its account is not among the CRM's accounts" in flat  # the orphan deals, counted with their ids
    assert (out / "subscriptions.parquet").is_file()


def test_mrr_per_account_and_month_equals_the_truth_but_for_metered_first_periods(imported) -> None:
    gen, out, _ = imported
    truth_subs = pd.read_parquet(gen / "subscriptions.parquet")
    got_subs = pd.read_parquet(out / "subscriptions.parquet")
    days = list(pd.date_range("2026-01-31", AS_OF.isoformat(), freq="ME").date)
    both = mrr_at(truth_subs, days).merge(mrr_at(got_subs, days), on=["account_id", "day"], how="outer",
                                          suffixes=("_true", "_got")).fillna(0.0)
    assert len(both) > 150
    differ = both[(both["mrr_true"] - both["mrr_got"]).abs() > 0.01]
    assert len(differ) <= 0.05 * len(both), differ.head(10)
    for row in differ.itertuples():
        # the only allowed difference: an item whose first period (no complete period invoiced yet) reads 0
        first = got_subs[(got_subs["account_id"] == row.account_id)
                         & (pd.to_datetime(got_subs["valid_from"]).dt.date <= row.day)
                         & ((got_subs["valid_to"].isna()) | (pd.to_datetime(got_subs["valid_to"]).dt.date > row.day))]
        zero = first[(first["mrr"] == 0) & (first["seats"] == 0)]
        assert not zero.empty, (row, first)
        later = got_subs[(got_subs["account_id"] == row.account_id) & (got_subs["product_id"].isin(zero["product_id"]))
                         & (pd.to_datetime(got_subs["valid_from"]) > pd.to_datetime(zero["valid_from"]).max())]
        assert (later["mrr"] > 0).any(), (row, later)  # it reads its invoiced usage from the next period on
        assert row.mrr_true - row.mrr_got == pytest.approx(
            truth_subs[(truth_subs["account_id"] == row.account_id) & truth_subs["product_id"].isin(zero["product_id"])
                       & (pd.to_datetime(truth_subs["valid_from"]).dt.date <= row.day)]["mrr"].iloc[-1], abs=0.01)


def test_the_imported_company_validates(imported) -> None:
    _, out, _ = imported
    result = CliRunner().invoke(app, ["validate", "--data", str(out)])
    assert result.exit_code == 0, result.output[-3000:]
