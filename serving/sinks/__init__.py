"""CRM sinks: where a batch scoring run writes its rows, all or nothing.

``open_sink(uri, settings)`` opens the sink its URI's scheme names in the registry
(``SINKS``: scheme -> factory; ``register_sink`` adds one, ``sink_help()`` lists them):

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
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Protocol

if TYPE_CHECKING:  # the registry and its help text stay cheap to import (the CLI reads them at start)
    import pandas as pd

    from features.config import Settings
    from serving.sinks.rows import RunInfo

__all__ = ["Sink", "SinkError", "SinkKind", "SinkOptions", "RunInfo", "open_sink", "register_sink", "sink_help",
           "SINKS"]


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


@dataclass(frozen=True)
class SinkOptions:
    """What a factory gets besides the URI."""

    settings: Settings
    field_map: Mapping[str, str] | None = None
    table_prefix: str = ""


@dataclass(frozen=True)
class SinkKind:
    """One registered sink: its URI scheme, how its URI is written (for help texts) and its factory."""

    scheme: str
    example: str
    open: Callable[[str, SinkOptions], Sink]
    #: Takes ``--field-map`` (the CRM import files).
    field_map: bool = False


#: The sinks by URI scheme, in the order help texts list them.
SINKS: dict[str, SinkKind] = {}


def register_sink(kind: SinkKind) -> SinkKind:
    """Add a sink to the registry; a scheme registered twice is an error."""
    if kind.scheme in SINKS:
        raise SinkError(f"sink scheme {kind.scheme!r} is registered twice")
    SINKS[kind.scheme] = kind
    return kind


def sink_help() -> str:
    """The sink URIs, for a ``--sink`` help text: 'csv:PATH, parquet:PATH, ... or postgresql://...'."""
    examples = [k.example for k in SINKS.values()]
    return ", ".join(examples[:-1]) + " or " + examples[-1] if len(examples) > 1 else "".join(examples)


def scheme_of(uri: str) -> str:
    """The registry key of a URI: its scheme before ':' without a driver (``postgresql+psycopg`` -> postgresql)."""
    return uri.split(":", 1)[0].split("+", 1)[0].lower() if ":" in uri else ""


def _file_path(uri: str, scheme: str) -> Path:
    path = uri[len(scheme) + 1 :]
    if path.startswith("//"):  # tolerate csv:///abs/path as well as csv:/abs/path
        path = path[2:]
    if not path:
        raise SinkError(f"sink {uri!r}: missing a file path after '{scheme}:'")
    return Path(path)


def _csv(uri: str, options: SinkOptions) -> Sink:
    from serving.sinks.files import CsvSink

    return CsvSink(_file_path(uri, "csv"))


def _parquet(uri: str, options: SinkOptions) -> Sink:
    from serving.sinks.files import ParquetSink

    return ParquetSink(_file_path(uri, "parquet"))


def _salesforce(uri: str, options: SinkOptions) -> Sink:
    from serving.sinks.crm_formats import CrmFileSink, salesforce_format

    return CrmFileSink(_file_path(uri, "salesforce"), salesforce_format(options.field_map))


def _hubspot(uri: str, options: SinkOptions) -> Sink:
    from serving.sinks.crm_formats import CrmFileSink, hubspot_format

    return CrmFileSink(_file_path(uri, "hubspot"), hubspot_format(options.field_map))


def _sql(uri: str, options: SinkOptions) -> Sink:
    from serving.sinks.sql import SqlSink

    return SqlSink(uri, table_prefix=options.table_prefix)


for _kind in (
    SinkKind("csv", "csv:PATH", _csv),
    SinkKind("parquet", "parquet:PATH", _parquet),
    SinkKind("salesforce", "salesforce:PATH", _salesforce, field_map=True),
    SinkKind("hubspot", "hubspot:PATH", _hubspot, field_map=True),
    SinkKind("sqlite", "sqlite:///PATH", _sql),
    SinkKind("postgresql", "postgresql://...", _sql),
):
    register_sink(_kind)


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
    scheme = scheme_of(uri)
    kind = SINKS.get(scheme)
    if kind is None:
        raise SinkError(f"sink {uri!r}: unknown scheme {scheme!r}; expected one of {', '.join(SINKS)}")
    if field_map and not kind.field_map:
        takers = " and ".join(f"{k.scheme}:" for k in SINKS.values() if k.field_map)
        raise SinkError(f"sink {uri!r}: a field map applies only to {takers} sinks")
    sink = kind.open(uri, SinkOptions(settings, field_map, table_prefix))
    sink.replace_newer, sink.kept_newer = replace_newer, None
    return sink


def __getattr__(name: str) -> object:
    if name == "RunInfo":  # re-exported lazily: importing the registry does not import the row code
        from serving.sinks.rows import RunInfo

        return RunInfo
    raise AttributeError(f"module 'serving.sinks' has no attribute {name!r}")
