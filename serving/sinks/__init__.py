"""CRM sinks: where a batch scoring run writes its rows, all or nothing.

``open_sink(uri, settings)`` parses a sink URI:

| URI | sink |
|---|---|
| ``csv:PATH`` / ``parquet:PATH`` | one row per account, every scorer field, reasons flattened |
| ``salesforce:PATH`` | a Bulk API 2.0 upsert CSV keyed by an external-id field |
| ``hubspot:PATH`` | a HubSpot company-import CSV |
| ``sqlite:///PATH`` / ``postgresql://...`` | upsert into ``account_scores``, append to ``account_score_history`` |

Every sink takes an iterable of scorer chunks and either writes all of them or leaves
the previous output untouched (write-then-rename for files, one transaction for SQL).

Scores never go backwards: a run whose snapshot is older than the one the sink's current
scores come from (a delayed job, a backfill) writes its history rows (SQL) but leaves the
current scores alone, and says so in ``kept_newer`` (the newer snapshot's date), unless
the sink was opened with ``replace_newer=True``. File sinks keep one run and no history,
so such a run writes nothing to them.
"""

from __future__ import annotations

import datetime as dt

from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Protocol

import pandas as pd

from features.config import Settings
from serving.sinks.rows import RunInfo

__all__ = ["Sink", "SinkError", "RunInfo", "open_sink", "SINK_SCHEMES"]

SINK_SCHEMES = ("csv", "parquet", "salesforce", "hubspot", "sqlite", "postgresql")


class SinkError(ValueError):
    """Raised for a sink URI or option that cannot be used."""


class Sink(Protocol):
    """A destination for one scoring run's rows."""

    uri: str
    #: Replace current scores even when they come from a newer snapshot (``--replace-newer``).
    replace_newer: bool
    #: After ``write``: the snapshot date of newer current scores the run left in place, else None.
    kept_newer: dt.date | None

    def previous_scores(self, before: dt.date | None = None) -> pd.DataFrame | None:
        """The previous run's scores (``account_id``, ``readiness_score``, ``readiness_band``, and when kept
        ``as_of``, ``churn_probability``, ``concept_contributions``): the newest run on a snapshot older than
        ``before`` where the sink keeps history; None when there is none."""
        ...

    def write(self, run: RunInfo, chunks: Iterable[pd.DataFrame]) -> int:
        """Write every chunk of scorer output for ``run``; all or nothing. Returns the number of rows written."""
        ...

    def close(self) -> None:
        """Release connections (file sinks hold none)."""
        ...


def _file_path(uri: str, scheme: str) -> Path:
    path = uri[len(scheme) + 1 :]
    if path.startswith("//"):  # tolerate csv:///abs/path as well as csv:/abs/path
        path = path[2:]
    if not path:
        raise SinkError(f"sink {uri!r}: missing a file path after '{scheme}:'")
    return Path(path)


def open_sink(
    uri: str,
    settings: Settings,
    *,
    field_map: Mapping[str, str] | None = None,
    table_prefix: str = "",
    replace_newer: bool = False,
) -> Sink:
    """Open the sink a URI names (``settings.crm_uri`` is the embedded default).

    ``field_map`` renames row fields for the CRM formats (``{"readiness_score":
    "My_Score__c", "account_id": "My_External_Id__c"}``); ``table_prefix`` prefixes the
    SQL table names (tests use it to stay out of each other's way). ``replace_newer`` lets
    a run on an older snapshot replace current scores from a newer one (a deliberate
    re-statement); by default such a run leaves them in place.
    """
    sink = _open(uri, settings, field_map, table_prefix)
    sink.replace_newer, sink.kept_newer = replace_newer, None
    return sink


def _open(uri: str, settings: Settings, field_map: Mapping[str, str] | None, table_prefix: str) -> Sink:
    scheme = uri.split(":", 1)[0].split("+", 1)[0].lower() if ":" in uri else ""
    if scheme not in SINK_SCHEMES:
        raise SinkError(f"sink {uri!r}: unknown scheme {scheme!r}; expected one of {', '.join(SINK_SCHEMES)}")
    if field_map and scheme not in ("salesforce", "hubspot"):
        raise SinkError(f"sink {uri!r}: a field map applies only to salesforce: and hubspot: sinks")
    if scheme in ("csv", "parquet"):
        from serving.sinks.files import CsvSink, ParquetSink

        path = _file_path(uri, scheme)
        return CsvSink(path) if scheme == "csv" else ParquetSink(path)
    if scheme in ("salesforce", "hubspot"):
        from serving.sinks.crm_formats import CrmFileSink, hubspot_format, salesforce_format

        fmt = salesforce_format(field_map) if scheme == "salesforce" else hubspot_format(field_map)
        return CrmFileSink(_file_path(uri, scheme), fmt)
    from serving.sinks.sql import SqlSink

    return SqlSink(uri, table_prefix=table_prefix)
