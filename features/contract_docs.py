"""Render the data contract as Markdown (``docs/data-contract.md`` is this output, checked by a test)."""

from __future__ import annotations

from features.contract import ROW_RULES, TABLES, Column

HEADER = """# Data contract

Generated from `features/contract.py` by `python -m features.contract_docs > docs/data-contract.md`;
a test fails when the two disagree. `expansion validate --data DIR [--as-of DATE]` checks a
data folder against it.

A data folder holds one file per table: `<table>.parquet`, `<table>.csv`, or a folder
`<table>/` of Parquet parts. Required tables: accounts, subscriptions, usage_daily. The
others are optional: when absent, the features that need them are null (see
`docs/features.md`), never an error. Money is in one currency per dataset.

Rules checked on load, each reported with table, column, rule and up to five offending rows:
a missing required table or column; a wrong type; a null in a non-nullable column; a
duplicate key; a value outside its allowed set or range; the row rules below; overlapping
subscription periods for one account and product; child rows whose `account_id` is not in
`accounts`; `opportunity_stages` rows whose `opportunity_id` is not in `opportunities`;
event timestamps after the as-of date (a subscription's `valid_to` or `renewal_date`, and
an opportunity's `expected_close_date`, may lie in the future). The order of
`opportunity_stages.stage` is a setting (`EXPANSION_OPPORTUNITY_STAGES`, default
prospecting, qualification, needs_analysis, proposal, negotiation, closed_won, closed_lost).
"""


def _rule(col: Column) -> str:
    parts = []
    if col.allowed:
        parts.append("one of " + ", ".join(f"`{v}`" for v in col.allowed))
    if col.min is not None:
        parts.append(f">= {col.min:g}")
    if col.max is not None:
        parts.append(f"<= {col.max:g}")
    return "; ".join(parts)


def render() -> str:
    """The full Markdown reference of every table, column and rule."""
    lines = [HEADER]
    for table in TABLES.values():
        status = "required" if table.required else "optional"
        lines += [f"## `{table.name}` ({status})", "", f"Grain: {table.grain}."]
        if table.key:
            lines.append(f"Key: ({', '.join(table.key)}).")
        if table.event_time:
            lines.append(f"Must not lie after the as-of date: {', '.join(table.event_time)}.")
        lines += ["", "| column | type | nullable | allowed | description |", "|---|---|---|---|---|"]
        for col in table.columns:
            nullable = "yes" if col.nullable else "no"
            lines.append(f"| `{col.name}` | {col.dtype} | {nullable} | {_rule(col)} | {col.description} |")
        lines.append("")
    lines += ["## Row rules", "", "| table | columns | rule |", "|---|---|---|"]
    lines += [f"| {r.table} | {', '.join(r.columns)} | {r.rule} |" for r in ROW_RULES]
    return "\n".join(lines) + "\n"


if __name__ == "__main__":  # pragma: no cover
    print(render(), end="")
