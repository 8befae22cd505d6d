"""File sinks (CSV, Parquet): stream rows into a temporary file next to the target, then rename.

``os.replace`` is atomic on one filesystem, so a reader sees either the previous file
or the complete new one. A run that fails removes its temporary file; a run killed
outright leaves a hidden ``.<name>.*.partial`` file behind, never a half-written target.
"""

from __future__ import annotations

import datetime as dt
import os
import tempfile
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from pathlib import Path

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from serving.sinks.rows import RunInfo, empty_score_frame, to_rows

PREVIOUS_COLUMNS = ["account_id", "readiness_score", "readiness_band"]
# Read too when present, so the next run can say what changed (readiness_change, change_reason).
CHANGE_INPUT_COLUMNS = ["as_of", "churn_probability", "concept_contributions"]


@contextmanager
def atomic_path(path: Path) -> Iterator[Path]:
    """Yield a temporary path beside ``path``; rename it over ``path`` on success, delete it on failure."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, name = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".partial", dir=path.parent)
    os.close(fd)
    tmp = Path(name)
    try:
        yield tmp
        with open(tmp, "rb") as written:
            os.fsync(written.fileno())
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def newer_snapshot(newest: object, run: RunInfo) -> dt.date | None:
    """``newest`` (the snapshot date current scores come from) when it is after the run's, else None."""
    if newest is None or pd.isna(newest):
        return None
    newest = pd.Timestamp(newest).date()
    return newest if newest > run.as_of else None


def consume(chunks: Iterable[pd.DataFrame]) -> int:
    """Count the rows of a run that is not written (its scores are still computed and summarised)."""
    return sum(len(chunk) for chunk in chunks)


def iso_columns(rows: pd.DataFrame) -> pd.DataFrame:
    """Dates as YYYY-MM-DD and the scored-at time as ISO 8601 UTC with Z, for text formats."""
    out = rows.copy()
    out["as_of"] = rows["as_of"].dt.strftime("%Y-%m-%d")
    out["scored_at"] = rows["scored_at"].dt.strftime("%Y-%m-%dT%H:%M:%SZ")
    return out


class FileSink:
    """A sink writing one file: its URI, nothing to close, the previous run's scores read back from the file,
    and a write that leaves a newer snapshot's file alone or replaces the whole file atomically.

    A subclass says which row fields the file holds (``_columns``), reads some of them back
    (``_read_previous``: probabilities 0-1, scores as numbers) and writes a run into a temporary path (``_write``).
    """

    scheme = ""
    replace_newer = False
    kept_newer: dt.date | None = None

    def __init__(self, path: Path) -> None:
        self.path = path
        self.uri = f"{self.scheme}:{path}"

    def _keeps_newer(self, run: RunInfo) -> bool:
        """True when the file holds scores of a newer snapshot than ``run``'s that this run must not replace."""
        self.kept_newer = None
        if self.replace_newer or not self.path.is_file() or "as_of" not in self._columns():
            return False
        self.kept_newer = newer_snapshot(pd.to_datetime(self._read_previous(["as_of"])["as_of"]).max(), run)
        return self.kept_newer is not None

    def close(self) -> None:
        pass

    def previous_scores(self, before: dt.date | None = None) -> pd.DataFrame | None:
        """The file's scores, unless it holds a run on a snapshot newer than ``before``."""
        if not self.path.is_file() or not set(PREVIOUS_COLUMNS) <= set(self._columns()):
            return None
        previous = self._read_previous([c for c in PREVIOUS_COLUMNS + CHANGE_INPUT_COLUMNS if c in self._columns()])
        if before is not None and "as_of" in previous.columns and len(previous):
            # A file keeps one run and no history: it is the previous run unless its snapshot is newer.
            # (A re-run of the same snapshot therefore measures changes against itself.)
            if pd.to_datetime(previous["as_of"]).max() > pd.Timestamp(before):
                return None
        return previous

    def write(self, run: RunInfo, chunks: Iterable[pd.DataFrame]) -> int:
        if self._keeps_newer(run):
            return consume(chunks)
        with atomic_path(self.path) as tmp:
            return self._write(tmp, run, chunks)

    def _columns(self) -> list[str]:
        raise NotImplementedError

    def _read_previous(self, columns: list[str]) -> pd.DataFrame:
        raise NotImplementedError

    def _write(self, tmp: Path, run: RunInfo, chunks: Iterable[pd.DataFrame]) -> int:
        raise NotImplementedError


class CsvSink(FileSink):
    """``csv:PATH``: every row field plus any extra scorer field; UTF-8, comma, header once."""

    scheme = "csv"

    def _columns(self) -> list[str]:
        return list(pd.read_csv(self.path, nrows=0).columns)

    def _read_previous(self, columns: list[str]) -> pd.DataFrame:
        return pd.read_csv(self.path, usecols=columns, dtype={"account_id": "string"})

    def _write(self, tmp: Path, run: RunInfo, chunks: Iterable[pd.DataFrame]) -> int:
        written = 0
        columns: list[str] | None = None
        with open(tmp, "w", encoding="utf-8", newline="") as out:
            for chunk in chunks:
                rows = iso_columns(to_rows(chunk, run))
                columns = columns or list(rows.columns)
                rows.reindex(columns=columns).to_csv(out, header=written == 0, index=False)
                written += len(rows)
            if columns is None:  # no accounts: still a valid file with a header
                pd.DataFrame(columns=list(to_rows(empty_score_frame(), run).columns)).to_csv(out, index=False)
        return written


def _arrow_schema(rows: pd.DataFrame) -> pa.Schema:
    """Schema fixed from the first chunk; all-null columns become strings, as_of a date."""
    schema = pa.Schema.from_pandas(rows, preserve_index=False)
    fields = []
    for f in schema:
        if f.name == "as_of":
            f = f.with_type(pa.date32())
        elif pa.types.is_null(f.type):
            f = f.with_type(pa.string())
        fields.append(f)
    return pa.schema(fields)


class ParquetSink(FileSink):
    """``parquet:PATH``: the same rows as CSV with types kept (dates, UTC timestamps, floats)."""

    scheme = "parquet"

    def _columns(self) -> list[str]:
        return list(pq.read_schema(self.path).names)

    def _read_previous(self, columns: list[str]) -> pd.DataFrame:
        return pq.read_table(self.path, columns=columns).to_pandas()

    def _write(self, tmp: Path, run: RunInfo, chunks: Iterable[pd.DataFrame]) -> int:
        written = 0
        writer: pq.ParquetWriter | None = None
        try:
            for chunk in chunks:
                rows = to_rows(chunk, run)
                if writer is None:
                    schema = _arrow_schema(rows)
                    writer = pq.ParquetWriter(tmp, schema)
                rows["as_of"] = rows["as_of"].dt.date
                writer.write_table(pa.Table.from_pandas(rows[schema.names], schema=schema, preserve_index=False))
                written += len(rows)
            if writer is None:
                rows = to_rows(empty_score_frame(), run)
                pq.write_table(pa.Table.from_pandas(rows, schema=_arrow_schema(rows), preserve_index=False), tmp)
        finally:
            if writer is not None:
                writer.close()
        return written
