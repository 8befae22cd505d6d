"""The one adapter to Ibis internals: the few private hooks the feature pipeline relies on.

Every use of an Ibis API that is not public lives here, so that an Ibis upgrade breaks
one module, and ``tests/features/test_portable.py`` says so loudly, naming the version
these hooks were written against (``IBIS_VERSION``, pinned in ``constraints.txt``).

* :func:`ensure_bit_or`: Ibis 12 compiles the ``BIT_OR`` aggregate for DuckDB,
  DataFusion, PostgreSQL, BigQuery and Snowflake but leaves it undefined for Spark SQL,
  which has had ``bit_or`` since Spark 3.0; this adds that one rule, once.
* :func:`named_memtable`: ``ibis.memtable`` under a name of the caller's (Ibis 12 makes up a
  new one on every call, and has no argument for it).
* :func:`memtables_of`: the in-memory tables an expression reads, by name, with their data
  (a compiled plan keeps the constant ones, ``features.plans``).
* :func:`spark_session_of`: the Spark session a PySpark backend was connected with.
* :func:`sql_over`: SQL text over an expression, with its result schema declared. Ibis 12's
  ``Table.sql`` reads the schema from the engine, which fails on DuckDB 2.0
  (``fetch_arrow_table`` is gone) and would run on the connection while a build's steps do;
  this builds the same node, ``SQLStringView``, without asking the engine.
"""

from __future__ import annotations

from typing import Any

#: The Ibis release these hooks were written and tested against.
IBIS_VERSION = "12.0.0"


class IbisChanged(RuntimeError):
    """An Ibis internal this module relies on is gone or changed: re-check it against the new release."""


def _spark_bit_or(self: Any, op: Any, *, arg: Any, where: Any) -> Any:  # noqa: ARG001 - Ibis' visitor signature
    return self.agg.bit_or(arg, where=where)


def ensure_bit_or() -> None:
    """Give Ibis' Spark SQL compiler a rule for the ``bit_or`` aggregate when it has none (idempotent)."""
    from ibis.backends.sql.compilers.base import SQLGlotCompiler
    from ibis.backends.sql.compilers.pyspark import PySparkCompiler

    if getattr(PySparkCompiler, "visit_BitOr", SQLGlotCompiler.visit_Undefined) is SQLGlotCompiler.visit_Undefined:
        PySparkCompiler.visit_BitOr = _spark_bit_or


def named_memtable(data: Any, name: str | None = None, schema: Any = None) -> Any:
    """``ibis.memtable(data, schema=schema)``, named ``name`` (None: the name Ibis makes up)."""
    import ibis

    table = ibis.memtable(data, schema=schema)
    if name is None:
        return table
    op = table.op()
    if not hasattr(op, "copy") or "name" not in getattr(op, "__argnames__", ()):
        raise IbisChanged(f"Ibis in-memory tables cannot be renamed (written for Ibis {IBIS_VERSION})")
    return op.copy(name=name).to_expr()


def memtables_of(table: Any) -> dict[str, Any]:
    """The in-memory tables (``ibis.memtable``) ``table`` reads: name -> their rows as a ``pyarrow.Table``."""
    from ibis.expr import operations as ops

    found = {}
    for op in table.op().find(ops.InMemoryTable):
        to_pyarrow = getattr(op.data, "to_pyarrow", None)
        if to_pyarrow is None:
            raise IbisChanged(f"Ibis in-memory table data has no to_pyarrow (written for Ibis {IBIS_VERSION})")
        found[op.name] = to_pyarrow(op.schema)
    return found


def sql_over(table: Any, name: str, query: str, schema: dict[str, str]) -> Any:
    """``query``, reading ``table`` as ``name``, as an Ibis table of ``schema``.

    The text is parsed in the dialect of the engine that runs it, so it must be SQL every
    engine reads the same way (plain identifiers, standard aggregates).
    """
    import ibis
    from ibis.expr import operations as ops

    view = getattr(ops, "SQLStringView", None)
    if view is None:
        raise IbisChanged(f"Ibis has no SQLStringView operation (written for Ibis {IBIS_VERSION})")
    return view(parent=table.alias(name).op(), query=query, schema=ibis.schema(schema)).to_expr()


def spark_session_of(backend: Any) -> Any:
    """The ``SparkSession`` an Ibis PySpark backend was connected with."""
    session = getattr(backend, "_session", None)
    if session is None:
        raise IbisChanged(f"Ibis PySpark backend has no _session (written for Ibis {IBIS_VERSION})")
    return session
