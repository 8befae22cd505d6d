"""Writing the contract folder safely: beside the target, validated, marked, renamed into place.

``--out`` must be absent, empty or a folder an earlier import wrote (the :data:`MARKER` file); anything else is refused
and nothing in it touched. The old folder is renamed aside and removed only once the new one is in place; temporary
folders of imports that were killed are removed by the next run.
"""

from __future__ import annotations

import datetime as dt
import shutil
import tempfile
from pathlib import Path

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from features.contract import TABLES
from features.importers.errors import ImportFailed, ImportProblem
from features.processes import pid_alive

MARKER = ".expansion-import"  # written into every folder an import writes; --out replaces only such folders


def _arrow(name: str, frame: pd.DataFrame) -> pa.Table:
    from features.synth.writer import contract_schema

    schema = contract_schema(name)
    columns = {}
    for f in schema:
        values = frame[f.name] if f.name in frame else pd.Series([None] * len(frame))
        if pa.types.is_date32(f.type):
            values = pd.to_datetime(values).dt.date
        elif pa.types.is_timestamp(f.type):
            values = pd.to_datetime(values).astype("datetime64[us]")
        arr = pa.array(values.astype(object).where(values.notna(), None).tolist() if not pa.types.is_timestamp(f.type)
                       else values, from_pandas=True)
        columns[f.name] = arr.cast(f.type)
    return pa.table(columns, schema=schema)


def check_target(out: Path) -> None:
    """Refuse a target that exists and was not written by an import (no marker): nothing in it is touched."""
    if not out.exists():
        return
    if not out.is_dir():
        raise ImportFailed([ImportProblem("import", "--out", "*", f"{out} exists and is not a folder; nothing was changed")])
    if (out / MARKER).exists() or not any(out.iterdir()):
        return
    raise ImportFailed([ImportProblem("import", "--out", "*", f"{out} exists and was not written by an import (no {MARKER} "
                                      "marker); choose a new folder or empty it yourself; nothing in it was changed")])


def clean_stale(out: Path) -> list[str]:
    """Temporary folders of imports into ``out`` that were killed before finishing (their process is gone): removed."""
    removed = []
    for entry in out.parent.glob(f".{out.name}.import-*"):
        pid_file = entry / ".pid"
        try:
            pid = int(pid_file.read_text()) if pid_file.exists() else None
        except ValueError:
            pid = None
        if pid is not None and pid_alive(pid, own=False):  # an earlier failed import of this process is stale
            continue
        shutil.rmtree(entry, ignore_errors=True)
        removed.append(entry.name)
    for entry in out.parent.glob(f".{out.name}.replaced-*"):
        if out.exists():
            shutil.rmtree(entry, ignore_errors=True)
            removed.append(entry.name)
    return removed


def write_contract(tables: dict[str, pd.DataFrame], out: Path, as_of: dt.date) -> dict[str, int]:
    """Write the tables beside ``out``, validate them, then move them into place; nothing changes on failure.

    ``out`` must be absent, empty or an earlier import's folder (marker file); the old folder is renamed aside
    and removed only once the new one is in place."""
    import os

    from features.io import open_data
    from features.validate import validate

    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    clean_stale(out)
    check_target(out)
    tmp = Path(tempfile.mkdtemp(prefix=f".{out.name}.import-", dir=out.parent))
    (tmp / ".pid").write_text(str(os.getpid()))
    try:
        rows = {}
        for name in TABLES:
            if name in tables:
                table = _arrow(name, tables[name])
                pq.write_table(table, tmp / f"{name}.parquet", compression="zstd")
                rows[name] = table.num_rows
        source = open_data(tmp)
        try:
            checked = validate(source, as_of)
        finally:
            source.close()
        if not checked.ok:
            raise ImportFailed([ImportProblem("contract", v.table, v.column, v.rule, v.rows) for v in checked.violations])
        (tmp / ".pid").unlink()
        (tmp / MARKER).write_text(f"written by expansion import, as of {as_of.isoformat()}\n")
        if out.exists():
            old = out.with_name(f".{out.name}.replaced-{tmp.name.rsplit('-', 1)[-1]}")
            out.rename(old)
            tmp.rename(out)
            shutil.rmtree(old, ignore_errors=True)
        else:
            tmp.rename(out)
        return rows
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)
