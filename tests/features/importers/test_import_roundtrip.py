"""Round trip: the generated company written as Stripe, Salesforce and Segment exports and imported back
gives the same contract tables, NRR, GRR and feature frame, to the cent."""

from __future__ import annotations

import datetime as dt
import shutil
import tomllib
from pathlib import Path

import pandas as pd
import pytest

from features.build import build_features
from features.config import Settings
from features.importers.run import import_sources
from features.io import open_data
from features.metrics import MetricTables, period_metrics
from features.spine import month_ends
from features.synth import generate
from features.synth.raw_shapes import write_raw

AS_OF = dt.date(2026, 6, 30)
IMPORTED = ("accounts", "subscriptions", "products", "usage_daily", "payments")
KEYS = {"accounts": ["account_id"], "subscriptions": ["account_id", "product_id", "valid_from"],
        "products": ["product_id", "plan"], "usage_daily": ["account_id", "date", "feature_key"], "payments": ["invoice_id"]}

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def company(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """(the generator's own tables for what the three tools carry, the same company imported from its raw exports)."""
    root = tmp_path_factory.mktemp("roundtrip")
    generate(root / "generated", accounts=16, months=7, seed=5, as_of=AS_OF)
    write_raw(root / "generated", root / "raw")
    own = root / "own"
    own.mkdir()
    # the opportunity tables travel through Salesforce too (the generator writes them since the pipeline work)
    for table in (*IMPORTED, "opportunities", "opportunity_stages"):
        shutil.copy(root / "generated" / f"{table}.parquet", own / f"{table}.parquet")
    config = tomllib.loads((root / "raw" / "import-map.toml").read_text())
    import_sources(["stripe", "salesforce", "segment"], root / "raw", root / "imported", config, AS_OF)
    return own, root / "imported"


def _sorted(folder: Path, table: str) -> pd.DataFrame:
    frame = pd.read_parquet(folder / f"{table}.parquet")
    return frame.sort_values(KEYS[table]).reset_index(drop=True)


@pytest.mark.parametrize("table", IMPORTED)
def test_every_imported_table_equals_the_generators(company, table: str) -> None:
    own, imported = company
    pd.testing.assert_frame_equal(_sorted(imported, table), _sorted(own, table), check_dtype=False, check_exact=True)


def test_nrr_and_grr_equal_to_the_cent(company) -> None:
    own, imported = company
    got = []
    for folder in (own, imported):
        source = open_data(folder)
        try:
            got.append(period_metrics(MetricTables.from_source(source), "month", end=AS_OF))
        finally:
            source.close()
    mine, theirs = got
    assert len(mine) >= 5
    for column in ("starting_mrr", "expansion_mrr", "contraction_mrr", "churned_mrr", "ending_mrr"):
        assert (mine[column].round(2) == theirs[column].round(2)).all(), column
    pd.testing.assert_series_equal(mine["nrr_pct"], theirs["nrr_pct"], check_exact=True)
    pd.testing.assert_series_equal(mine["grr_pct"], theirs["grr_pct"], check_exact=True)


def test_feature_frame_equal(company) -> None:
    frames = []
    for folder in company:
        source = open_data(folder)
        try:
            first = source.con.execute("SELECT min(date) FROM usage_daily").fetchone()[0]
            frames.append(build_features(source, month_ends(first, AS_OF), Settings(_env_file=None)))
        finally:
            source.close()
    mine, theirs = (f.sort_values(["account_id", "as_of"]).reset_index(drop=True) for f in frames)
    assert len(mine) > 40
    pd.testing.assert_frame_equal(theirs, mine, check_dtype=False, check_exact=True)


def test_opportunities_and_stages_round_trip(tmp_path: Path) -> None:
    """Opportunities (when the company has them) go out as Salesforce opportunities with history-mode stage
    versions and come back equal; a closed deal's expected close date becomes its close date, as in Salesforce."""
    generate(tmp_path / "generated", accounts=4, months=2, seed=4, as_of=AS_OF)
    accounts = pd.read_parquet(tmp_path / "generated" / "accounts.parquet")["account_id"]
    ts = pd.Timestamp
    opps = pd.DataFrame({
        "opportunity_id": ["O1", "O2", "O3"], "account_id": [accounts[0], accounts[1], accounts[1]],
        "kind": ["upsell", "renewal", "cross_sell"], "amount": [1200.5, 30000.0, 480.0],
        "created_at": [ts("2026-05-02 10:00"), ts("2026-05-10 09:30"), ts("2026-06-01 15:00")],
        "expected_close_date": [ts("2026-07-15"), ts("2026-06-20"), ts("2026-06-25")],
        "closed_at": [pd.NaT, ts("2026-06-20 17:00"), ts("2026-06-25 12:00")],
        "outcome": ["open", "won", "lost"], "owner": ["ae-1", "csm-7", None],
    })
    stages = pd.DataFrame({
        "opportunity_id": ["O1", "O1", "O2", "O2", "O2", "O3"],
        "stage": ["identified", "qualified", "identified", "proposal", "closed won", "closed lost"],
        "entered_at": [ts("2026-05-02 10:00"), ts("2026-05-20 11:00"), ts("2026-05-10 09:30"), ts("2026-06-01 08:00"),
                       ts("2026-06-20 17:00"), ts("2026-06-25 12:00")],
    })
    from features.synth.writer import contract_schema
    import pyarrow as pa
    import pyarrow.parquet as pq

    for name, frame in (("opportunities", opps), ("opportunity_stages", stages)):
        pq.write_table(pa.Table.from_pandas(frame, preserve_index=False).cast(contract_schema(name)),
                       tmp_path / "generated" / f"{name}.parquet")
    write_raw(tmp_path / "generated", tmp_path / "raw")
    config = tomllib.loads((tmp_path / "raw" / "import-map.toml").read_text())
    import_sources(["stripe", "salesforce", "segment"], tmp_path / "raw", tmp_path / "imported", config, AS_OF)
    got = pd.read_parquet(tmp_path / "imported" / "opportunities.parquet").sort_values("opportunity_id").reset_index(drop=True)
    expected = pd.read_parquet(tmp_path / "generated" / "opportunities.parquet")
    expected["expected_close_date"] = expected["closed_at"].dt.floor("D").fillna(pd.to_datetime(expected["expected_close_date"]))
    got["expected_close_date"] = pd.to_datetime(got["expected_close_date"])
    got["opportunity_id"] = got["opportunity_id"].map(dict(zip(sorted(got["opportunity_id"]), ["O1", "O2", "O3"])))
    pd.testing.assert_frame_equal(got, expected, check_dtype=False)
    got_stages = pd.read_parquet(tmp_path / "imported" / "opportunity_stages.parquet")
    assert got_stages.sort_values("entered_at")[["stage", "entered_at"]].reset_index(drop=True).equals(
        stages.sort_values("entered_at")[["stage", "entered_at"]].reset_index(drop=True).astype({"entered_at": "datetime64[us]"}))
