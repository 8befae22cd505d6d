"""Every score run's history lands in the product store whatever its sink, all or nothing, and once when the sink is
the store's own database."""

from __future__ import annotations

import datetime as dt
import uuid
from collections.abc import Iterator
from pathlib import Path

import pandas as pd
import pytest
import sqlalchemy as sa

from features.config import Settings
from serving.sinks import open_sink
from serving.sinks.history import WithHistory, with_history
from serving.sinks.rows import RunInfo
from serving.store import Store
from serving.store.schema import HISTORY


@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)])
def store(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Store]:
    if request.param == "sqlite":
        s = Store(f"sqlite:///{tmp_path / 'state.db'}")
        yield s
        s.close()
        return
    s = Store(request.getfixturevalue("postgres_url"), prefix=f"t{uuid.uuid4().hex[:10]}_")
    yield s
    s.metadata.drop_all(s.engine, checkfirst=True)
    s.close()


@pytest.fixture(scope="module")
def runs(feature_frame: pd.DataFrame) -> dict[dt.date, pd.DataFrame]:
    """Scorer output (the baseline, with reasons) of the two newest month ends."""
    from serving.scoring.scorer import Scorer, feature_specs

    days = sorted(pd.to_datetime(feature_frame["as_of"]).unique())[-2:]
    scorer = Scorer(None, None, feature_specs())
    return {pd.Timestamp(d).date(): scorer.score(feature_frame[pd.to_datetime(feature_frame["as_of"]) == d]
                                                 .reset_index(drop=True), with_reasons=True) for d in days}


def _history(store: Store) -> pd.DataFrame:
    with store.engine.connect() as conn:
        return pd.read_sql(sa.select(store.table(HISTORY)), conn, dtype={"account_id": "string"})


def _run(day: dt.date) -> RunInfo:
    return RunInfo(day, dt.datetime(2026, 7, 1, tzinfo=dt.UTC))


def test_a_run_into_another_sink_is_in_the_store_history_too(store: Store, runs: dict, tmp_path: Path) -> None:
    sqlite_sink = open_sink(f"sqlite:///{tmp_path / 'crm.db'}", Settings(_env_file=None))
    target = with_history(sqlite_sink, store)
    assert isinstance(target, WithHistory)
    first, second = sorted(runs)
    assert target.write(_run(first), [runs[first].iloc[:40], runs[first].iloc[40:]]) == len(runs[first])
    history = _history(store)
    crm = sqlite_sink.read_table("history")
    assert len(history) == len(crm) == len(runs[first]) and set(history["run_id"]) == set(crm["run_id"])
    merged = history.merge(crm.astype({"account_id": "string"}), on=["account_id", "run_id"], suffixes=("", "_crm"))
    assert len(merged) == len(crm) and (merged["readiness_score"] == merged["readiness_score_crm"]).all()

    def failing() -> Iterator[pd.DataFrame]:
        yield runs[second].iloc[:40]
        raise RuntimeError("the scorer failed mid-run")

    with pytest.raises(RuntimeError, match="mid-run"):
        target.write(_run(second), failing())
    assert len(_history(store)) == len(runs[first]) and len(sqlite_sink.read_table("history")) == len(runs[first])
    files = with_history(open_sink(f"csv:{tmp_path / 'scores.csv'}", Settings(_env_file=None)), store)
    files.write(_run(second), [runs[second]])  # a file sink keeps no history: the store keeps it
    assert sorted(_history(store)["as_of"].astype(str).unique()) == [str(first), str(second)]
    target.close()
    files.close()


def test_a_sink_on_the_store_database_is_not_wrapped(tmp_path: Path, runs: dict) -> None:
    uri = f"sqlite:///{tmp_path / 'state.db'}"
    sink = open_sink(uri, Settings(_env_file=None))
    assert with_history(sink, Store(uri)) is sink
    other = open_sink(f"sqlite:///{tmp_path / 'crm.db'}", Settings(_env_file=None))
    assert isinstance(with_history(other, Store(uri)), WithHistory)
    sink.close()
    other.close()
