"""Sinks are found by URI scheme in one registry: errors list what it holds, the CLI help is written from it."""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable
from pathlib import Path

import pandas as pd
import pytest
from typer.testing import CliRunner

from features.config import Settings
from serving.sinks import SINKS, RunInfo, SinkError, SinkKind, open_sink, register_sink, sink_help

RUN = RunInfo(dt.date(2024, 6, 30), dt.datetime(2024, 7, 1, 5, 30, tzinfo=dt.UTC))


class ListSink:
    """A sink that keeps the rows it was given in memory (a registered extension, not a stand-in for a real sink)."""

    replace_newer = False
    kept_newer: dt.date | None = None

    def __init__(self, uri: str) -> None:
        self.uri, self.rows = uri, []

    def previous_scores(self, before: dt.date | None = None) -> pd.DataFrame | None:
        return None

    def write(self, run: RunInfo, chunks: Iterable[pd.DataFrame]) -> int:
        self.rows = [row for chunk in chunks for row in chunk.to_dict("records")]
        return len(self.rows)

    def close(self) -> None:
        pass


def test_an_unknown_scheme_names_every_registered_one() -> None:
    with pytest.raises(SinkError) as caught:
        open_sink("ftp://host/scores.csv", Settings())
    message = str(caught.value)
    assert "unknown scheme 'ftp'" in message
    for scheme in SINKS:
        assert scheme in message
    with pytest.raises(SinkError, match="unknown scheme ''"):
        open_sink("scores.csv", Settings())


def test_each_builtin_scheme_opens_its_sink(tmp_path: Path) -> None:
    opened = {scheme: open_sink(uri, Settings()) for scheme, uri in {
        "csv": f"csv:{tmp_path / 'a.csv'}", "parquet": f"parquet:{tmp_path / 'a.parquet'}",
        "salesforce": f"salesforce:{tmp_path / 'sf.csv'}", "hubspot": f"hubspot:{tmp_path / 'hs.csv'}",
        "sqlite": f"sqlite:///{tmp_path / 'crm.db'}"}.items()}
    assert {s: type(sink).__name__ for s, sink in opened.items()} == {
        "csv": "CsvSink", "parquet": "ParquetSink", "salesforce": "CrmFileSink", "hubspot": "CrmFileSink",
        "sqlite": "SqlSink"}
    assert opened["salesforce"].format.name == "salesforce" and opened["hubspot"].format.name == "hubspot"
    for sink in opened.values():
        sink.close()
    assert set(SINKS) == {"csv", "parquet", "salesforce", "hubspot", "sqlite", "postgresql"}


def test_a_field_map_is_refused_where_the_registry_says_it_does_not_apply(tmp_path: Path) -> None:
    with pytest.raises(SinkError, match="applies only to salesforce: and hubspot: sinks"):
        open_sink(f"csv:{tmp_path / 'a.csv'}", Settings(), field_map={"readiness_score": "x"})


def test_a_registered_sink_is_opened_by_its_scheme_and_listed_in_the_help(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(SINKS, "memory", SinkKind("memory", "memory:NAME", lambda uri, options: ListSink(uri)))
    sink = open_sink("memory:today", Settings(), replace_newer=True)
    assert isinstance(sink, ListSink) and sink.replace_newer is True
    assert sink.write(RUN, [pd.DataFrame({"account_id": ["a", "b"]})]) == 2 and len(sink.rows) == 2
    assert "memory:NAME" in sink_help()
    with pytest.raises(SinkError, match="registered twice"):
        register_sink(SinkKind("memory", "memory:NAME", lambda uri, options: ListSink(uri)))


def test_the_score_help_lists_every_registered_sink() -> None:
    from serving.cli import app

    result = CliRunner().invoke(app, ["score", "--help"], env={"COLUMNS": "400", "TERM": "dumb"})
    assert result.exit_code == 0, result.output
    text = " ".join(result.output.split())
    for kind in SINKS.values():
        assert kind.example in text, f"--sink help misses {kind.example}"
    assert sink_help() == "csv:PATH, parquet:PATH, salesforce:PATH, hubspot:PATH, sqlite:///PATH or postgresql://..."
