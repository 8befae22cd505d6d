"""Small gaps in Ibis' SQL compilers, filled so that one feature definition runs everywhere.

Ibis 12 compiles the ``BIT_OR`` aggregate for DuckDB, DataFusion, PostgreSQL, BigQuery and
Snowflake but leaves it undefined for Spark SQL, which has had ``bit_or`` since Spark 3.0.
:func:`ensure_bit_or` adds that one rule, once, when a feature expression needs it.
"""

from __future__ import annotations

from typing import Any


def _spark_bit_or(self: Any, op: Any, *, arg: Any, where: Any) -> Any:  # noqa: ARG001 - Ibis' visitor signature
    return self.agg.bit_or(arg, where=where)


def ensure_bit_or() -> None:
    """Give Ibis' Spark SQL compiler a rule for the ``bit_or`` aggregate when it has none (idempotent)."""
    from ibis.backends.sql.compilers.base import SQLGlotCompiler
    from ibis.backends.sql.compilers.pyspark import PySparkCompiler

    if getattr(PySparkCompiler, "visit_BitOr", SQLGlotCompiler.visit_Undefined) is SQLGlotCompiler.visit_Undefined:
        PySparkCompiler.visit_BitOr = _spark_bit_or
