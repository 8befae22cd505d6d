"""The one raw pass over usage_daily gives exactly what the reference definitions give, on DuckDB and on Spark.

The reference is the three Ibis definitions (``daily_usage``, ``feature_use_30d``,
``first_use``) that read raw usage once each; ``features.usage_pass`` reads it once for
all three. Both run on the clean and the messy generated company, at month ends and at
weekly dates (whose 30-day windows overlap, so a day belongs to several snapshots).
The whole feature frame is compared on DuckDB; on Spark the three tables.
"""

from __future__ import annotations

import datetime as dt
import os
from collections.abc import Iterator
from pathlib import Path

import pandas as pd
import pytest

from features.adoption import feature_use_30d, first_use
from features.build import build_features
from features.config import Settings
from features.io import open_data
from features.spine import month_ends, snapshots, to_day
from features.usage import MAX_WINDOW_DAYS, daily_usage, usage_between
from features.usage_pass import daily_from_pass, first_use_from_pass, key_segments, key_use_from_pass, raw_usage_pass

CLEAN_MONTHS = month_ends(dt.date(2025, 6, 1), dt.date(2026, 6, 30))
MESSY_MONTHS = month_ends(dt.date(2026, 1, 1), dt.date(2026, 11, 30))
WEEKLY = [dt.date(2026, 3, 1) + dt.timedelta(days=7 * i) for i in range(6)]


def _shapes(usage, dates: list[dt.date]) -> dict[str, tuple]:  # noqa: ANN001 - an Ibis table on any backend
    """Each shape by the reference and by the pass, with its sort keys."""
    days = [to_day(d) for d in dates]
    snap_days = snapshots(dates).select("as_of_day")
    upto = usage_between(usage, None, dates[-1])
    recent = usage_between(usage, dates[0] - dt.timedelta(days=MAX_WINDOW_DAYS), dates[-1])
    day_map, seg_snaps = key_segments(days)
    one = raw_usage_pass(upto, days[0] - MAX_WINDOW_DAYS, day_map)
    return {
        "daily": (daily_usage(recent), daily_from_pass(one), ["account_id", "day"]),
        "per key, 30 days": (feature_use_30d(recent, snap_days), key_use_from_pass(one, seg_snaps),
                             ["account_id", "as_of_day", "feature_key"]),
        "first use": (first_use(upto), first_use_from_pass(one), ["account_id", "feature_key"]),
    }


def _frame(backend, table, keys: list[str]) -> pd.DataFrame:  # noqa: ANN001
    frame = backend.to_pyarrow(table).to_pandas()
    return frame.sort_values(keys, na_position="first").reset_index(drop=True)


def _assert_shapes_equal(backend, usage, dates: list[dt.date]) -> None:  # noqa: ANN001
    for name, (reference, fast, keys) in _shapes(usage, dates).items():
        want, got = _frame(backend, reference, keys), _frame(backend, fast, keys)
        assert len(want) > 0, name
        pd.testing.assert_frame_equal(got[list(want.columns)], want, check_dtype=False, obj=name)


@pytest.mark.parametrize("dates", [CLEAN_MONTHS, WEEKLY], ids=["month ends", "weekly"])
def test_pass_equals_the_reference_on_duckdb_clean(generated_company: Path, dates: list[dt.date]) -> None:
    source = open_data(generated_company)
    try:
        _assert_shapes_equal(source.ibis(), source.ibis().table("usage_daily"), dates)
    finally:
        source.close()


@pytest.mark.parametrize("dates", [MESSY_MONTHS, WEEKLY], ids=["month ends", "weekly"])
def test_pass_equals_the_reference_on_duckdb_messy(messy_company: Path, dates: list[dt.date]) -> None:
    source = open_data(messy_company)
    try:
        _assert_shapes_equal(source.ibis(), source.ibis().table("usage_daily"), dates)
    finally:
        source.close()


@pytest.mark.parametrize("company, dates", [("generated_company", CLEAN_MONTHS), ("messy_company", MESSY_MONTHS),
                                            ("messy_company", WEEKLY)])
def test_feature_frame_with_the_pass_equals_the_reference_frame(
    company: str, dates: list[dt.date], request: pytest.FixtureRequest,
) -> None:
    source = open_data(request.getfixturevalue(company))
    settings = Settings(_env_file=None)
    try:
        fast = build_features(source, dates, settings, signals=True, raw_pass=True)
        reference = build_features(source, dates, settings, signals=True)
    finally:
        source.close()
    assert len(fast) > 100
    pd.testing.assert_frame_equal(fast, reference)


# --- Spark: the same shapes on the Spark engine, one local session for the module ---

@pytest.fixture(scope="module")
def spark_settings(tmp_path_factory: pytest.TempPathFactory) -> Settings:
    if os.environ.get("CI"):  # make test installs it; in CI a missing engine is a failure, not a skip
        import pyspark  # noqa: F401
    else:
        pytest.importorskip("pyspark")
    return Settings(_env_file=None, spark_master="local[1]", home=tmp_path_factory.mktemp("spark-home"))


@pytest.fixture(scope="module")
def spark_open(spark_settings: Settings) -> Iterator[object]:
    from features.engines import open_engine
    from features.portable import spark_session_of

    opened = []

    def open_(folder: Path):  # noqa: ANN202
        opened.append(open_engine("spark", spark_settings, data=folder))
        return opened[-1]

    yield open_
    if opened:
        spark_session_of(opened[0].backend).stop()


@pytest.mark.spark
@pytest.mark.slow
@pytest.mark.parametrize("company, dates", [("generated_company", CLEAN_MONTHS[-4:]), ("messy_company", MESSY_MONTHS[-4:]),
                                            ("messy_company", WEEKLY)])
def test_pass_equals_the_reference_on_spark(
    company: str, dates: list[dt.date], spark_open, request: pytest.FixtureRequest,  # noqa: ANN001
) -> None:
    engine = spark_open(request.getfixturevalue(company))
    _assert_shapes_equal(engine.backend, engine.tables["usage_daily"], dates)


@pytest.mark.spark
@pytest.mark.slow
def test_a_local_spark_session_keeps_its_warehouse_out_of_the_working_directory(
    spark_open, spark_settings: Settings, generated_company: Path,  # noqa: ANN001
) -> None:
    from features.portable import spark_session_of

    session = spark_session_of(spark_open(generated_company).backend)
    warehouse = Path(session.conf.get("spark.sql.warehouse.dir").removeprefix("file:")).resolve()
    # under a home (this module's, or that of a session this worker started before), never the checkout
    checkout = Path(__file__).resolve().parents[2]
    assert warehouse.name == "spark-warehouse" and not warehouse.is_relative_to(checkout), warehouse
    assert not (Path.cwd() / "spark-warehouse").exists() and not (checkout / "spark-warehouse").exists()


@pytest.mark.spark
@pytest.mark.slow
def test_a_local_session_sizes_its_shuffle_partitions_to_the_usage_rows(spark_open, messy_company: Path) -> None:  # noqa: ANN001
    from features.engines import SHUFFLE_PARTITIONS, shuffle_partitions
    from features.portable import spark_session_of

    engine = spark_open(messy_company)
    session = spark_session_of(engine.backend)
    rows = session.table("expansion_usage_daily").count()
    assert session.conf.get(SHUFFLE_PARTITIONS) == str(shuffle_partitions(rows)) == "4"  # a small company
    assert [shuffle_partitions(n) for n in (0, 4_000_001, 11_843_068, 35_700_000, 10**9)] == [4, 9, 24, 64, 64]
