"""The same import read straight from a database through Ibis: a DuckDB file and PostgreSQL, one schema per
connector (as Fivetran and Airbyte land them), giving the same contract tables as the folder of files."""

from __future__ import annotations

import datetime as dt
import os
import tomllib
from pathlib import Path

import duckdb
import pandas as pd
import pytest

from features.importers.run import import_sources
from features.synth import generate
from features.synth.raw_shapes import write_raw

AS_OF = dt.date(2026, 6, 30)
SOURCES = ["stripe", "salesforce", "segment"]
TABLES = ("accounts", "subscriptions", "products", "usage_daily", "payments")


@pytest.fixture(scope="module")
def exported(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict, Path]:
    """(raw folder, identity map, the contract imported from the folder)."""
    root = tmp_path_factory.mktemp("db")
    generate(root / "company", accounts=5, months=2, seed=4, as_of=AS_OF)
    write_raw(root / "company", root / "raw")
    config = tomllib.loads((root / "raw" / "import-map.toml").read_text())
    import_sources(SOURCES, root / "raw", root / "from-files", config, AS_OF)
    return root / "raw", config, root / "from-files"


def _same_contract(a: Path, b: Path) -> None:
    for table in TABLES:
        left, right = pd.read_parquet(a / f"{table}.parquet"), pd.read_parquet(b / f"{table}.parquet")
        keys = list(left.columns[:3])
        pd.testing.assert_frame_equal(left.sort_values(keys).reset_index(drop=True),
                                      right.sort_values(keys).reset_index(drop=True), check_dtype=False)


def test_duckdb_file(exported, tmp_path: Path) -> None:
    raw, config, from_files = exported
    path = tmp_path / "warehouse.duckdb"
    con = duckdb.connect(str(path))
    for source in SOURCES:
        con.execute(f"CREATE SCHEMA {source}")
        for file in sorted((raw / source).glob("*.parquet")):
            con.execute(f"CREATE TABLE {source}.{file.stem} AS SELECT * FROM read_parquet('{file}')")
    con.close()
    import_sources(SOURCES, f"duckdb://{path}", tmp_path / "from-db", config, AS_OF)
    _same_contract(from_files, tmp_path / "from-db")


@pytest.fixture
def postgres_url() -> str:
    url = os.environ.get("EXPANSION_TEST_POSTGRES_URL")
    if url:
        return url  # set explicitly (make test does): a server that does not answer is a failure
    url = "postgresql+psycopg://postgres@127.0.0.1:5432/test"
    try:
        import psycopg

        psycopg.connect(url.replace("+psycopg", ""), connect_timeout=3).close()
    except Exception:  # noqa: BLE001 - nothing answers
        pytest.skip("no PostgreSQL: set EXPANSION_TEST_POSTGRES_URL (make test does)")
    return url


@pytest.mark.postgres
def test_postgresql(exported, postgres_url: str, tmp_path: Path) -> None:
    import sqlalchemy as sa

    raw, config, from_files = exported
    engine = sa.create_engine(postgres_url)
    prefix = f"raw_{os.getpid()}_"
    schemas = {s: prefix + s for s in SOURCES}
    try:
        with engine.begin() as con:
            for source, schema in schemas.items():
                con.execute(sa.text(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE'))
                con.execute(sa.text(f'CREATE SCHEMA "{schema}"'))
        for source, schema in schemas.items():
            for file in sorted((raw / source).glob("*.parquet")):
                frame = pd.read_parquet(file)
                frame.to_sql(file.stem, engine, schema=schema, index=False, chunksize=5000, method="multi")
        config = {**config, **{s: {**config.get(s, {}), "schema": schema} for s, schema in schemas.items()}}
        import_sources(SOURCES, postgres_url, tmp_path / "from-pg", config, AS_OF)
        _same_contract(from_files, tmp_path / "from-pg")
    finally:
        with engine.begin() as con:
            for schema in schemas.values():
                con.execute(sa.text(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE'))
        engine.dispose()
