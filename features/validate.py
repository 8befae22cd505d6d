"""Check a data folder against the contract, in DuckDB, and report every violation.

Each violation names the table, the column, the rule and up to five offending rows.
Checks that depend on a column are skipped when that column is missing or has the
wrong type (the missing or mistyped column is itself reported).
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field

from features.contract import REQUIRED_TABLES, ROW_RULES, TABLES, Column, Table
from features.io import DataSource

EXAMPLES = 5

_TYPE_FAMILIES: dict[str, tuple[str, ...]] = {
    "string": ("VARCHAR",),
    "int": ("TINYINT", "SMALLINT", "INTEGER", "BIGINT", "HUGEINT", "UTINYINT", "USMALLINT", "UINTEGER", "UBIGINT"),
    "float": ("FLOAT", "DOUBLE", "DECIMAL", "TINYINT", "SMALLINT", "INTEGER", "BIGINT", "HUGEINT"),
    "date": ("DATE", "TIMESTAMP", "TIMESTAMP_NS", "TIMESTAMP_MS", "TIMESTAMP_S", "TIMESTAMP WITH TIME ZONE"),
    "timestamp": ("DATE", "TIMESTAMP", "TIMESTAMP_NS", "TIMESTAMP_MS", "TIMESTAMP_S", "TIMESTAMP WITH TIME ZONE"),
    "bool": ("BOOLEAN",),
}


@dataclass
class Violation:
    """One broken rule: where, which rule, how many rows, and a few of them."""

    table: str
    column: str
    rule: str
    rows: int = 0
    examples: list[dict] = field(default_factory=list)

    def __str__(self) -> str:
        head = f"{self.table}.{self.column}: {self.rule}"
        return head + (f" ({self.rows} rows)" if self.rows else "")


@dataclass
class TableSummary:
    table: str
    rows: int
    first: dt.date | None
    last: dt.date | None


@dataclass
class Report:
    """What ``validate`` found: per-table summaries, absent optional tables and violations."""

    summaries: list[TableSummary] = field(default_factory=list)
    absent_optional: list[str] = field(default_factory=list)
    violations: list[Violation] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.violations


def _type_ok(col: Column, duck_type: str) -> bool:
    base = duck_type.split("(")[0].upper()
    return base in _TYPE_FAMILIES[col.dtype]


def _q(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


def _bad_rows(source: DataSource, table: str, where: str, columns: list[str]) -> tuple[int, list[dict]]:
    """Count the rows of ``table`` meeting ``where`` and fetch a few of them."""
    n = source.con.execute(f"SELECT count(*) FROM {table} WHERE {where}").fetchone()[0]
    if not n:
        return 0, []
    cols = ", ".join(_q(c) for c in columns)
    frame = source.con.execute(f"SELECT {cols} FROM {table} WHERE {where} LIMIT {EXAMPLES}").fetchall()
    return int(n), [dict(zip(columns, row)) for row in frame]


class _TableChecker:
    """Runs the column, key and row checks of one present table."""

    def __init__(self, source: DataSource, table: Table, report: Report) -> None:
        self.source, self.table, self.report = source, table, report
        described = source.con.execute(f"DESCRIBE {table.name}").fetchall()
        self.types = {row[0]: row[1] for row in described}
        self.usable: set[str] = set()

    def add(self, column: str, rule: str, where: str, show: list[str]) -> None:
        n, examples = _bad_rows(self.source, self.table.name, where, show)
        if n:
            self.report.violations.append(Violation(self.table.name, column, rule, n, examples))

    def run(self, as_of: dt.date) -> None:
        t = self.table
        for col in t.columns:
            if col.name not in self.types:
                self.report.violations.append(Violation(t.name, col.name, "required column is missing"))
            elif not _type_ok(col, self.types[col.name]):
                self.report.violations.append(
                    Violation(t.name, col.name, f"must be of type {col.dtype}, found {self.types[col.name]}")
                )
            else:
                self.usable.add(col.name)
        key_cols = [c for c in t.key if c in self.usable]
        for col in t.columns:
            if col.name in self.usable:
                self._column_checks(col, key_cols)
        if t.key and len(key_cols) == len(t.key):
            self._duplicate_key()
        for rule in ROW_RULES:
            if rule.table == t.name and set(rule.columns) <= self.usable:
                self.add(", ".join(rule.columns), rule.rule, rule.bad_row_sql, key_cols + list(rule.columns))
        for col_name in t.event_time:
            if col_name in self.usable:
                self.add(col_name, f"must not lie after the as-of date {as_of}",
                         f"CAST({_q(col_name)} AS DATE) > DATE '{as_of}'", key_cols + [col_name])

    def _column_checks(self, col: Column, key_cols: list[str]) -> None:
        q, show = _q(col.name), list(dict.fromkeys(key_cols + [col.name]))
        if not col.nullable:
            self.add(col.name, "must not be null", f"{q} IS NULL", show)
        if col.allowed is not None:
            allowed = ", ".join("'" + v + "'" for v in col.allowed)
            self.add(col.name, f"must be one of {', '.join(col.allowed)}", f"{q} NOT IN ({allowed})", show)
        if col.min is not None:
            self.add(col.name, f"must be >= {col.min:g}", f"{q} < {col.min}", show)
        if col.max is not None:
            self.add(col.name, f"must be <= {col.max:g}", f"{q} > {col.max}", show)

    def _duplicate_key(self) -> None:
        t, keys = self.table, ", ".join(_q(c) for c in self.table.key)
        sql = f"SELECT {keys}, count(*) AS n FROM {t.name} GROUP BY ALL HAVING count(*) > 1"
        dupes = self.source.con.execute(sql).fetchall()
        if dupes:
            examples = [dict(zip([*t.key, "copies"], row)) for row in dupes[:EXAMPLES]]
            self.report.violations.append(
                Violation(t.name, ", ".join(t.key), "key must be unique", len(dupes), examples)
            )


def _overlapping_subscriptions(source: DataSource, report: Report) -> None:
    sql = """
        WITH ordered AS (
            SELECT account_id, product_id, valid_from, valid_to,
                   lag(coalesce(valid_to, DATE '9999-12-31')) OVER w AS previous_valid_to
            FROM subscriptions
            WINDOW w AS (PARTITION BY account_id, product_id ORDER BY valid_from)
        )
        SELECT account_id, product_id, valid_from, valid_to, previous_valid_to
        FROM ordered WHERE previous_valid_to > valid_from
    """
    rows = source.con.execute(sql).fetchall()
    if rows:
        cols = ["account_id", "product_id", "valid_from", "valid_to", "previous_valid_to"]
        report.violations.append(
            Violation("subscriptions", "valid_from, valid_to",
                      "periods of one account and product must not overlap", len(rows),
                      [dict(zip(cols, r)) for r in rows[:EXAMPLES]])
        )


def _orphans(source: DataSource, table: Table, report: Report) -> None:
    where = "account_id NOT IN (SELECT account_id FROM accounts WHERE account_id IS NOT NULL)"
    n, examples = _bad_rows(source, table.name, where, ["account_id"])
    if n:
        report.violations.append(Violation(table.name, "account_id", "must exist in accounts", n, examples))


def _stage_orphans(source: DataSource, report: Report) -> None:
    where = "opportunity_id NOT IN (SELECT opportunity_id FROM opportunities WHERE opportunity_id IS NOT NULL)"
    n, examples = _bad_rows(source, "opportunity_stages", where, ["opportunity_id", "stage"])
    if n:
        report.violations.append(
            Violation("opportunity_stages", "opportunity_id", "must exist in opportunities", n, examples)
        )


def _summary(source: DataSource, table: Table, usable: set[str]) -> TableSummary:
    time_col = next((c for c in (*table.event_time, "customer_since") if c in usable), None)
    if time_col is None:
        rows = source.con.execute(f"SELECT count(*) FROM {table.name}").fetchone()[0]
        return TableSummary(table.name, int(rows), None, None)
    rows, first, last = source.con.execute(
        f"SELECT count(*), min(CAST({_q(time_col)} AS DATE)), max(CAST({_q(time_col)} AS DATE)) FROM {table.name}"
    ).fetchone()
    return TableSummary(table.name, int(rows), first, last)


def validate(source: DataSource, as_of: dt.date) -> Report:
    """Check every present table against the contract; absent optional tables are reported, not failed."""
    report = Report()
    for name in REQUIRED_TABLES:
        if not source.has(name):
            report.violations.append(Violation(name, "*", "required table is missing"))
    usable_by_table: dict[str, set[str]] = {}
    for name, table in TABLES.items():
        if not source.has(name):
            if not table.required:
                report.absent_optional.append(name)
            continue
        checker = _TableChecker(source, table, report)
        checker.run(as_of)
        usable_by_table[name] = checker.usable
        report.summaries.append(_summary(source, table, checker.usable))
    subs = usable_by_table.get("subscriptions", set())
    if {"account_id", "product_id", "valid_from", "valid_to"} <= subs:
        _overlapping_subscriptions(source, report)
    if "account_id" in usable_by_table.get("accounts", set()):
        for name, table in TABLES.items():
            if table.references_accounts and "account_id" in usable_by_table.get(name, set()):
                _orphans(source, table, report)
    if ("opportunity_id" in usable_by_table.get("opportunities", set())
            and "opportunity_id" in usable_by_table.get("opportunity_stages", set())):
        _stage_orphans(source, report)
    return report
