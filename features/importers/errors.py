"""Import problems: every one names the source table, the column and the rule broken."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class ImportProblem:
    """One broken expectation of a raw table, e.g. ``stripe.subscription_item.quantity: negative in 3 rows``."""

    source: str
    table: str
    column: str
    rule: str
    rows: int = 0

    def __str__(self) -> str:
        tail = f" in {self.rows} rows" if self.rows else ""
        return f"{self.source}.{self.table}.{self.column}: {self.rule}{tail}"


class ImportFailed(Exception):
    """The import stopped; nothing was written. ``problems`` lists every reason found."""

    def __init__(self, problems: list[ImportProblem]) -> None:
        self.problems = problems
        super().__init__("; ".join(str(p) for p in problems))


class Problems:
    """Collects problems while a source is read, so one run reports all of them."""

    def __init__(self, source: str) -> None:
        self.source = source
        self.items: list[ImportProblem] = []

    def add(self, table: str, column: str, rule: str, rows: int = 0) -> None:
        self.items.append(ImportProblem(self.source, table, column, rule, rows))

    def check(self, table: str, column: str, rule: str, bad) -> None:  # noqa: ANN001 - a boolean Series or array
        """Record ``rule`` when any row of the boolean mask ``bad`` is true, with the count."""
        n = int(bad.sum())
        if n:
            self.add(table, column, rule, n)

    def raise_if_any(self) -> None:
        if self.items:
            raise ImportFailed(list(self.items))
