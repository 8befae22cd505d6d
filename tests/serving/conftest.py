"""Fixtures for the serving tests: a real PostgreSQL for the CRM sink (``postgres_url``)."""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator

import pytest

FALLBACK_POSTGRES_URL = "postgresql+psycopg://postgres@127.0.0.1:5432/test"


def _answers(url: str) -> bool:
    try:
        import psycopg
    except ImportError:
        return False
    try:
        psycopg.connect(url.replace("postgresql+psycopg://", "postgresql://"), connect_timeout=3).close()
    except psycopg.Error:
        return False
    return True


@pytest.fixture(scope="session")
def postgres_url() -> str:
    """``EXPANSION_TEST_POSTGRES_URL`` (CI always sets it), else a local server; skip only if nothing answers."""
    url = os.environ.get("EXPANSION_TEST_POSTGRES_URL")
    if url:
        return url  # set explicitly: a server that does not answer is a failure, not a skip
    if not _answers(FALLBACK_POSTGRES_URL):
        pytest.skip("no PostgreSQL: set EXPANSION_TEST_POSTGRES_URL (make test does)")
    return FALLBACK_POSTGRES_URL


@pytest.fixture(params=["sqlite", "postgresql"])
def sql_sink_uri(request: pytest.FixtureRequest, tmp_path) -> Iterator[tuple[str, str]]:  # noqa: ANN001
    """``(uri, table_prefix)`` of an empty CRM database: a SQLite file, or PostgreSQL with tables dropped afterwards."""
    prefix = f"t{uuid.uuid4().hex[:10]}_"
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'crm.db'}", prefix
        return
    url = request.getfixturevalue("postgres_url")
    yield url, prefix
    import sqlalchemy as sa

    engine = sa.create_engine(url)
    with engine.begin() as conn:
        for table in ("account_scores", "account_score_history"):
            conn.exec_driver_sql(f'DROP TABLE IF EXISTS "{prefix}{table}"')
    engine.dispose()
