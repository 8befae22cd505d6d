"""The alert signals and the deal features the alerts read run on Spark as on DuckDB (hand-built company)."""

from __future__ import annotations

import datetime as dt
import os

import pandas as pd
import pytest

from features.build import build_features, to_frame
from features.config import Settings
from features.io import open_data
from features.portable import spark_session_of
from serving.alerts.signals import READ_FEATURES

if os.environ.get("CI"):
    import pyspark  # noqa: F401
else:
    pytest.importorskip("pyspark")

SNAPSHOTS = [dt.date(2025, 3, 1), dt.date(2025, 3, 31), dt.date(2025, 5, 10)]
ts = pd.Timestamp


def pipeline(tables: dict[str, pd.DataFrame]) -> None:
    """Three deals: an upsell moving through stages, a renewal (never expansion), an expansion won in March."""
    tables["opportunities"] = pd.DataFrame({
        "opportunity_id": ["O1", "O2", "O3"], "account_id": ["A1", "A4", "A3"],
        "kind": ["upsell", "renewal", "expansion"], "amount": [6000.0, 1200.0, 3000.0],
        "created_at": [ts("2025-01-05 09:00"), ts("2024-06-01"), ts("2024-12-20")],
        "expected_close_date": [dt.date(2025, 5, 1), None, dt.date(2025, 3, 1)],
        "closed_at": [None, None, ts("2025-03-15 12:00")], "outcome": ["open", "open", "won"],
        "owner": ["kim", "lee", "kim"],
    })
    tables["opportunity_stages"] = pd.DataFrame({
        "opportunity_id": ["O1", "O1", "O1", "O2", "O3"],
        "stage": ["prospecting", "qualification", "proposal", "prospecting", "negotiation"],
        "entered_at": [ts("2025-01-05 09:00"), ts("2025-02-20 10:00"), ts("2025-04-10 10:00"), ts("2024-06-01"),
                       ts("2025-01-01")],
    })


def test_alert_signals_on_spark_equal_duckdb(tiny_company, tmp_path) -> None:  # noqa: ANN001
    from features.engines import open_engine, spark_feature_frame

    folder, settings = tiny_company(pipeline), Settings(
        _env_file=None, spark_master="local[1]", home=tmp_path / "home")
    source = open_data(folder)
    try:
        duck = build_features(source, SNAPSHOTS, settings, signals=True)
    finally:
        source.close()
    engine = open_engine("spark", settings, data=folder)
    try:
        frame, release = spark_feature_frame(engine, SNAPSHOTS, settings, signals=True)
        try:
            spark = to_frame(frame.toPandas())
        finally:
            release()
    finally:
        spark_session_of(engine.backend).stop()
    keys = ["account_id", "as_of"]
    spark = spark.assign(as_of=spark["as_of"].astype(duck["as_of"].dtype)).sort_values(keys).reset_index(drop=True)
    duck = duck.sort_values(keys).reset_index(drop=True)
    assert duck["usage_vs_prior_90d_pct"].notna().any() and duck["open_opportunity_days_in_stage"].notna().any()
    pd.testing.assert_frame_equal(spark[keys + list(READ_FEATURES)], duck[keys + list(READ_FEATURES)],
                                  check_exact=False, rtol=1e-9, atol=1e-9)
