"""Parquet output: one file per table, schemas taken from the contract, written chunk by chunk."""

from __future__ import annotations

from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq

from features.contract import TABLES

ARROW_TYPES = {
    "string": pa.string(),
    "int": pa.int64(),
    "float": pa.float64(),
    "date": pa.date32(),
    "timestamp": pa.timestamp("us"),
    "bool": pa.bool_(),
}


def contract_schema(table: str) -> pa.Schema:
    """The Arrow schema of a canonical table: the contract's columns, in order, with their types."""
    t = TABLES[table]
    return pa.schema([pa.field(c.name, ARROW_TYPES[c.dtype], nullable=c.nullable) for c in t.columns])


class TableWriters:
    """One open Parquet writer per table; ``write`` appends a chunk as one or more row groups."""

    def __init__(self, out_dir: Path) -> None:
        self.out_dir = out_dir
        self.writers: dict[str, pq.ParquetWriter] = {}
        self.rows: dict[str, int] = {name: 0 for name in TABLES}

    def write(self, name: str, table: pa.Table) -> None:
        schema = contract_schema(name)
        if table.column_names != schema.names:
            raise ValueError(f"{name}: generated columns {table.column_names} differ from the contract {schema.names}")
        table = table.cast(schema)
        if name not in self.writers:
            self.writers[name] = pq.ParquetWriter(self.out_dir / f"{name}.parquet", schema, compression="zstd")
        self.writers[name].write_table(table, row_group_size=1 << 20)
        self.rows[name] += table.num_rows

    def close(self) -> dict[str, int]:
        """Close every file (writing an empty one for tables that got no rows) and return rows per table."""
        for name in TABLES:
            if name not in self.writers:
                pq.write_table(contract_schema(name).empty_table(), self.out_dir / f"{name}.parquet")
        for writer in self.writers.values():
            writer.close()
        self.writers.clear()
        return dict(self.rows)
