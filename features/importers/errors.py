"""Import problems: every one names the source table, the column and the rule broken."""

from __future__ import annotations

from dataclasses import dataclass, field

EXAMPLES = 5


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


@dataclass
class Ledger:
    """What one source's import did to the rows it read: per table rows read and kept, every drop with its
    reason and first ids, every coerced value (a number that did not parse, a decimal comma, a duplicate kept),
    and every fallback, so the report can say all of it."""

    source: str
    rows: dict[str, dict[str, int]] = field(default_factory=dict)
    dropped: list[dict] = field(default_factory=list)
    coerced: list[dict] = field(default_factory=list)
    said: list[str] = field(default_factory=list)

    def read(self, table: str, n: int) -> None:
        self.rows.setdefault(table, {"read": 0, "kept": 0})["read"] += int(n)

    def kept(self, table: str, n: int) -> None:
        self.rows.setdefault(table, {"read": 0, "kept": 0})["kept"] += int(n)

    def drop(self, table: str, reason: str, ids, rows: int | None = None) -> None:  # noqa: ANN001 - any iterable of ids
        """Record rows left out: ``ids`` (all of them, or the first few when ``rows`` gives the count)."""
        ids = [str(i) for i in ids]
        n = len(ids) if rows is None else int(rows)
        if n:
            self.dropped.append({"table": table, "reason": reason, "rows": n, "first_ids": ids[:EXAMPLES]})

    def coerce(self, table: str, column: str, what: str, ids) -> None:  # noqa: ANN001 - any iterable of ids
        ids = [str(i) for i in ids]
        if ids:
            self.coerced.append({"table": table, "column": column, "what": what, "rows": len(ids), "first_ids": ids[:EXAMPLES]})

    def say(self, text: str) -> None:
        self.said.append(f"{self.source}: {text}")

    def notes(self) -> list[str]:
        out = list(self.said)
        def first(ids: list[str]) -> str:
            return f" (first: {', '.join(ids)})" if ids else ""

        out += [f"{self.source}.{d['table']}: {d['rows']} row(s) left out: {d['reason']}{first(d['first_ids'])}" for d in self.dropped]
        out += [f"{self.source}.{c['table']}.{c['column']}: {c['what']} in {c['rows']} row(s){first(c['first_ids'])}"
                for c in self.coerced]
        return out


def first_ids(ids) -> str:  # noqa: ANN001 - any iterable of ids
    """The first few distinct ids of a problem, for its message."""
    ids = list(dict.fromkeys(str(i) for i in ids))
    return ", ".join(ids[:EXAMPLES]) + (" ..." if len(ids) > EXAMPLES else "")


class Problems:
    """Collects problems while a source is read, so one run reports all of them; ``ledger`` keeps what was
    dropped or coerced on the way."""

    def __init__(self, source: str) -> None:
        self.source = source
        self.items: list[ImportProblem] = []
        self.ledger = Ledger(source)

    def add(self, table: str, column: str, rule: str, rows: int = 0) -> None:
        self.items.append(ImportProblem(self.source, table, column, rule, rows))

    def check(self, table: str, column: str, rule: str, bad, ids=None) -> None:  # noqa: ANN001 - mask, ids
        """Record ``rule`` when any row of the boolean mask ``bad`` is true, with the count and the first ids."""
        n = int(bad.sum())
        if n:
            if ids is not None:
                rule = f"{rule} (first: {first_ids(ids[bad].dropna())})"
            self.add(table, column, rule, n)

    def raise_if_any(self) -> None:
        if self.items:
            raise ImportFailed(list(self.items))
