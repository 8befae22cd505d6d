"""The alert signals are registered and computed by the feature engine: the same on DuckDB and DataFusion."""

from __future__ import annotations

import datetime as dt
import os

import ibis
import pandas as pd
import pytest

from features.build import build_features, default_data_end, feature_table, tables_from_backend, to_frame
from features.config import Settings
from features.contract import TABLES
from features.io import open_data
from features.registry import feature_names, get, signal_names

if os.environ.get("CI"):
    import datafusion  # noqa: F401
else:
    pytest.importorskip("datafusion")

SNAPSHOTS = [dt.date(2025, 3, 31), dt.date(2025, 5, 10)]


def test_signals_are_registered_documented_and_never_model_inputs() -> None:
    assert signal_names() == ["usage_vs_prior_90d_pct"]
    assert not set(signal_names()) & set(feature_names())
    spec = get("usage_vs_prior_90d_pct")
    assert spec.window == "30d vs previous 90d" and spec.description.endswith(".")


def test_signals_are_asked_for_and_follow_the_features(tiny_company) -> None:
    source = open_data(tiny_company())
    try:
        plain = build_features(source, SNAPSHOTS, Settings(_env_file=None))
        with_signals = build_features(source, SNAPSHOTS, Settings(_env_file=None), signals=True)
    finally:
        source.close()
    assert list(with_signals.columns) == [*plain.columns, *signal_names()]
    pd.testing.assert_frame_equal(with_signals[list(plain.columns)], plain)
    at = with_signals.set_index(["account_id", with_signals["as_of"].dt.date])["usage_vs_prior_90d_pct"]
    assert at[("A4", dt.date(2025, 5, 10))] == pytest.approx(0.0)  # flat usage


def test_datafusion_computes_the_signals_as_duckdb_does(tiny_company) -> None:
    folder, settings = tiny_company(), Settings(_env_file=None)
    source = open_data(folder)
    try:
        backend = source.ibis()
        tables = tables_from_backend(backend, source.present)
        duck = to_frame(backend.execute(feature_table(tables, SNAPSHOTS, settings, default_data_end(tables), signals=True)))
    finally:
        source.close()
    fusion_backend = ibis.datafusion.connect()
    tables = {name: fusion_backend.read_parquet(folder / f"{name}.parquet", table_name=name)
              for name in TABLES if (folder / f"{name}.parquet").is_file()}
    fusion = to_frame(fusion_backend.execute(feature_table(tables, SNAPSHOTS, settings, default_data_end(tables),
                                                           signals=True)))
    assert duck["usage_vs_prior_90d_pct"].notna().sum() >= 3
    pd.testing.assert_frame_equal(duck, fusion, check_exact=False, rtol=1e-9, atol=1e-9)
