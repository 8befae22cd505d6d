"""Execution engines for the one feature definition: DuckDB on one machine, Spark beyond it.

``open_engine`` returns the canonical tables as Ibis tables on the chosen backend, in
the shape :func:`features.build.feature_table` takes, so that both engines run the very
same expressions. Spark is imported only here and only for ``engine="spark"``: the
default install stays Spark-free.

Spark reads Parquet from a path (a local folder or a lake URI such as ``s3a://...``:
``<table>.parquet`` or a folder ``<table>/`` of parts; CSV only from local folders) or
the canonical tables of a metastore database. The session stays on loopback when the
master is local.
"""

from __future__ import annotations

import datetime as dt
import logging
import os
import sys
import uuid
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

import ibis
from ibis.expr.types import Table

from features.config import Engine, Settings
from features.contract import TABLES
from features.io import DataError, find_table_source, open_data
from features.portable import spark_session_of

if TYPE_CHECKING:  # pragma: no cover - typing only; pyspark is an optional extra
    from pyspark.sql import DataFrame as SparkFrame
    from pyspark.sql import SparkSession


LOOPBACK = "127.0.0.1"
log = logging.getLogger(__name__)

# Keep a local session off the network and quiet; a cluster's own settings win over these.
LOCAL_SPARK_CONF = {
    "spark.driver.host": LOOPBACK,
    "spark.driver.bindAddress": LOOPBACK,
    "spark.ui.enabled": "false",
    "spark.ui.showConsoleProgress": "false",
    "spark.sql.session.timeZone": "UTC",
    "spark.sql.execution.arrow.pyspark.enabled": "true",
    # enough shuffle partitions that one task's sort fits its share of the heap (8 ran out of
    # memory at 50,000 accounts); open_engine lowers it to the data's size (shuffle_partitions)
    "spark.sql.shuffle.partitions": "64",
    "spark.sql.adaptive.enabled": "true",
    "spark.sql.adaptive.coalescePartitions.enabled": "true",
    # in local mode the driver is the executor: a 50,000-account company ran out of memory
    # with 1 GB (Spark's default) and 4 GB of heap and completed with 8 GB;
    # EXPANSION_SPARK_CONF='{"spark.driver.memory": "..."}' overrides it
    "spark.driver.memory": "8g",
}
SPARK_CONF = {"spark.sql.session.timeZone": "UTC", "spark.sql.execution.arrow.pyspark.enabled": "true"}


@dataclass
class EngineTables:
    """Ibis tables of the canonical tables on one backend, and how to release what was opened."""

    engine: Engine
    backend: ibis.BaseBackend
    tables: dict[str, Table]
    location: str
    _close: Callable[[], None] = field(default=lambda: None, repr=False)

    @property
    def present(self) -> list[str]:
        return list(self.tables)

    def close(self) -> None:
        """Close the DuckDB connection; a Spark session is left to its owner (see :func:`spark_session`)."""
        self._close()


def is_local_master(master: str) -> bool:
    """True for ``local``, ``local[N]`` and ``local[*]`` masters."""
    return master == "local" or master.startswith("local[")


def spark_warehouse(settings: Settings) -> Path:
    """Where a local Spark session keeps its (unused) SQL warehouse: ``<home>/spark-warehouse``."""
    return settings.home.resolve() / "spark-warehouse"


def spark_session(settings: Settings, app_name: str = "expansion-scoring") -> SparkSession:
    """Get or create the Spark session that ``settings`` describe (``spark_master``, ``spark_conf``).

    Local masters are pinned to loopback, and their Python workers run this interpreter
    (the one with the project installed); ``settings.spark_conf`` overrides any default.
    """
    try:
        from pyspark.sql import SparkSession
    except ImportError as exc:
        raise DataError(
            "--engine spark needs the spark extra: pip install -c constraints.txt 'expansion-scoring[spark]'"
        ) from exc
    local = is_local_master(settings.spark_master)
    if local:
        # Read by the launcher and by the Python-side SparkContext, not by the builder's config.
        os.environ.setdefault("SPARK_LOCAL_IP", LOOPBACK)
        os.environ.setdefault("PYSPARK_PYTHON", sys.executable)
    builder = SparkSession.builder.master(settings.spark_master).appName(app_name)
    defaults = dict(LOCAL_SPARK_CONF if local else SPARK_CONF)
    if local:
        # Spark's default warehouse is ./spark-warehouse in the working directory: state outside
        # the home. Nothing is saved as a Spark table, but the folder is created on start.
        defaults["spark.sql.warehouse.dir"] = str(spark_warehouse(settings))
    for key, value in {**defaults, **settings.spark_conf}.items():
        builder = builder.config(key, value)
    session = builder.getOrCreate()
    session.sparkContext.setLogLevel("ERROR")
    return session


def _is_uri(location: str) -> bool:
    return "://" in location and not location.startswith("file://")


def _read_spark_table(session: SparkSession, location: str, table: str) -> SparkFrame | None:
    """The table's Spark frame under ``location``, or None when the location has no such table."""
    from pyspark.errors import AnalysisException

    if not _is_uri(location):
        found = find_table_source(Path(location.removeprefix("file://")), table)
        if found is None:
            return None
        reader, path = found
        if reader == "csv":
            return session.read.csv(path, header=True, inferSchema=True)
        path = path.removesuffix("/**/*.parquet")
        return session.read.parquet(path)
    base = location.rstrip("/")
    for candidate in (f"{base}/{table}.parquet", f"{base}/{table}"):
        try:
            return session.read.parquet(candidate)
        except AnalysisException:  # path does not exist: try the next layout, else the table is absent
            continue
    return None


def spark_tables(session: SparkSession, *, data: str | None = None, database: str | None = None) -> EngineTables:
    """The canonical tables on Spark, from a Parquet location or a metastore database (exactly one)."""
    if (data is None) == (database is None):
        raise DataError("spark engine: give either a data location or a metastore database, not both or neither")
    backend = ibis.pyspark.connect(session)
    if database is not None:
        names = set(backend.list_tables(database=database))
        tables = {name: backend.table(name, database=database) for name in TABLES if name in names}
        return EngineTables(Engine.spark, backend, tables, f"database {database}")
    if not _is_uri(data) and not Path(data.removeprefix("file://")).is_dir():
        raise DataError(f"data folder {data} does not exist or is not a folder")
    tables = {}
    for name in TABLES:
        frame = _read_spark_table(session, data, name)
        if frame is not None:
            view = f"expansion_{name}"
            frame.createOrReplaceTempView(view)
            tables[name] = backend.table(view)
    return EngineTables(Engine.spark, backend, tables, data)


def duckdb_tables(data: str | Path) -> EngineTables:
    """The canonical tables of a data folder as DuckDB views (see :func:`features.io.open_data`)."""
    source = open_data(data)
    backend = source.ibis()
    tables = {name: backend.table(name) for name in source.present if name in TABLES}
    return EngineTables(Engine.duckdb, backend, tables, str(data), source.close)


def open_engine(
    engine: Engine | str, settings: Settings, *, data: str | Path | None = None, database: str | None = None
) -> EngineTables:
    """The canonical tables on ``engine`` (``duckdb`` or ``spark``), ready for ``feature_table``."""
    if engine not in set(Engine):
        raise DataError(f"engine {engine!r} is not known (choose from {', '.join(Engine)})")
    if engine == Engine.duckdb:
        if data is None or database is not None:
            raise DataError("duckdb engine: give a data folder (metastore databases need --engine spark)")
        return duckdb_tables(data)
    session = spark_session(settings)
    tables = spark_tables(session, data=None if data is None else str(data), database=database)
    sized = data is not None and "usage_daily" in tables.tables
    if sized and is_local_master(settings.spark_master) and SHUFFLE_PARTITIONS not in settings.spark_conf:
        rows = session.table("expansion_usage_daily").count()  # the view spark_tables registered
        partitions = shuffle_partitions(rows)
        session.conf.set(SHUFFLE_PARTITIONS, str(partitions))
        log.info("spark: %s shuffle partitions for %s usage_daily rows (EXPANSION_SPARK_CONF sets %s)",
                 partitions, f"{rows:,}", SHUFFLE_PARTITIONS)
    return tables


SHUFFLE_PARTITIONS = "spark.sql.shuffle.partitions"
#: usage_daily rows per shuffle partition in local mode: 50,000 accounts x 12 months (35.7 M rows), where 64
#: partitions and an 8 GB heap were measured to complete, still gets 64
ROWS_PER_PARTITION = 500_000


def shuffle_partitions(usage_rows: int) -> int:
    """Shuffle partitions for a local session over ``usage_rows`` usage rows: one per 500,000, 4 to 64.

    64 (the session's default) keeps one task's sort within its share of the heap at 50,000
    accounts (8 ran out of memory there); on a few hundred accounts the same 64 tasks per stage
    made the feature build 2.5x slower than 4 (40 s against 16 s for two month ends of 600 accounts).
    """
    return max(4, min(64, -(-usage_rows // ROWS_PER_PARTITION)))


def spark_feature_frame(
    engine: EngineTables,
    as_of_dates: Iterable[dt.date],
    settings: Settings,
    data_end: dt.date | None = None,
    *,
    cache: bool = True,
    signals: bool = False,
) -> tuple[SparkFrame, Callable[[], None]]:
    """The feature frame as a lazy Spark DataFrame with the dtypes of ``features.build.to_frame``, and a release function.

    Shared intermediates are cached in Spark (each is read by several families); call
    the release function once the frame has been written.
    """
    from features.build import default_data_end, feature_table

    if engine.engine != Engine.spark:
        raise DataError(f"spark_feature_frame needs the spark engine, got {engine.engine!r}")
    session = spark_session_of(engine.backend)
    prefix, views = f"expansion_features_{uuid.uuid4().hex[:8]}_", []

    def view(table: Table, cache: bool) -> Table:
        # create_view also registers the snapshot dates (an in-memory table) with the session
        views.append(f"{prefix}{len(views)}")
        engine.backend.create_view(views[-1], table)
        if cache:
            session.catalog.cacheTable(views[-1])
        return engine.backend.table(views[-1])

    def release() -> None:
        for name in views:
            session.catalog.uncacheTable(name)
            session.catalog.dropTempView(name)
        views.clear()

    end = data_end or default_data_end(engine.tables)
    expr = feature_table(engine.tables, list(as_of_dates), settings, end, materialize=lambda t: view(t, cache=cache),
                         signals=signals)
    view(expr, cache=False)
    return typed_features(session.table(views[-1])), release


def typed_features(frame: SparkFrame) -> SparkFrame:
    """Cast columns as ``to_frame`` does: ``account_id`` and text columns string, ``as_of`` date, numbers double."""
    from pyspark.sql import functions as F

    from features.registry import categorical_features

    cats = set(categorical_features())
    columns = []
    for name, kind in frame.dtypes:
        text = name == "account_id" or name in cats or kind == "string"
        target = "string" if text else "date" if name == "as_of" else "double"
        columns.append(F.col(name).cast(target).alias(name))
    return frame.select(*columns)


def write_partitioned(frame: SparkFrame, path: str, partition_by: str = "as_of") -> None:
    """Write ``frame`` as Parquet under ``path``, one folder per ``partition_by`` value; other dates are kept.

    Dynamic partition overwrite replaces only the snapshots being written, so a re-run of
    one month leaves the other months' features in place.
    """
    (
        frame.write.mode("overwrite")
        .option("partitionOverwriteMode", "dynamic")
        .partitionBy(partition_by)
        .parquet(path)
    )
