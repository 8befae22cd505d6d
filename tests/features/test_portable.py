"""The Ibis adapter: each private hook still exists in the installed Ibis, or the test says which release broke it."""

from __future__ import annotations

import os

import ibis
import pytest

from features import portable


def _changed(what: str) -> str:
    return (f"Ibis {ibis.__version__} changed {what}; features/portable.py was written for Ibis "
            f"{portable.IBIS_VERSION} (constraints.txt): re-check the hook before upgrading")


def test_spark_compiler_hooks_still_exist() -> None:
    from ibis.backends.sql.compilers.base import SQLGlotCompiler
    from ibis.backends.sql.compilers.pyspark import PySparkCompiler

    assert hasattr(SQLGlotCompiler, "visit_Undefined"), _changed("SQLGlotCompiler.visit_Undefined")
    portable.ensure_bit_or()
    assert PySparkCompiler.visit_BitOr is not SQLGlotCompiler.visit_Undefined, _changed("PySparkCompiler.visit_BitOr")


def test_pyspark_backend_keeps_its_session_attribute() -> None:
    # make test installs the spark extra; in CI a missing engine is a failure, not a skip
    if not os.environ.get("CI"):
        pytest.importorskip("pyspark")
    from ibis.backends.pyspark import Backend

    assert "_session" in Backend.do_connect.__code__.co_names, _changed("the PySpark backend's _session")
    with pytest.raises(portable.IbisChanged, match="written for Ibis"):
        portable.spark_session_of(object())


def test_sql_over_runs_sql_text_with_a_declared_schema_without_asking_the_engine() -> None:
    try:
        out = portable.sql_over(ibis.memtable({"a": [1, 2]}), "src", "SELECT a + 1 AS b FROM src", {"b": "int64"})
    except portable.IbisChanged as exc:
        pytest.fail(_changed(f"SQLStringView: {exc}"))
    assert out.schema() == ibis.schema({"b": "int64"})
    assert sorted(ibis.duckdb.connect().to_pyarrow(out).column("b").to_pylist()) == [2, 3]


def test_named_memtable_keeps_its_name_and_memtables_of_gives_its_rows_back() -> None:
    backend = ibis.duckdb.connect()
    try:
        calendar = portable.named_memtable({"day": [3, 1, 2]}, "_features_test_days", {"day": "int64"})
        expr = calendar.filter(calendar.day > 1).count()
        assert '"_features_test_days"' in str(backend.compile(expr)), _changed("InMemoryTable.name / copy")
        found = portable.memtables_of(expr)
        assert list(found) == ["_features_test_days"], _changed("Node.find(InMemoryTable)")
        assert found["_features_test_days"].column("day").to_pylist() == [3, 1, 2], _changed("TableProxy.to_pyarrow")
        backend.con.register("_features_test_days", found["_features_test_days"])  # as features.plans registers it
        assert backend.con.execute(str(backend.compile(expr))).fetchone()[0] == 2
        assert portable.named_memtable({"day": [1]}).op().name.startswith("ibis_")  # no name: Ibis makes one up
    except portable.IbisChanged as exc:
        pytest.fail(_changed(str(exc)))
    finally:
        backend.disconnect()
