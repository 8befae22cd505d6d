"""The pages' tables on SQLite and PostgreSQL: people and hashed tokens, the play log, score history."""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator

import pandas as pd
import pytest
import sqlalchemy as sa

from serving.web.auth import hash_token
from serving.web.store import StoreError, WebStore

NOW = dt.datetime(2026, 7, 1, 9, 0, tzinfo=dt.UTC)


@pytest.fixture
def store(sql_sink_uri: tuple[str, str]) -> Iterator[WebStore]:
    uri, prefix = sql_sink_uri
    web = WebStore(uri, table_prefix=prefix)
    yield web
    with web.engine.begin() as conn:
        for table in ("web_users", "play_log"):
            conn.exec_driver_sql(f'DROP TABLE IF EXISTS "{prefix}{table}"')
    web.close()


def test_tokens_are_stored_hashed_and_a_new_one_revokes_the_old(store: WebStore) -> None:
    first = store.add_user("Casey", "csm", "csm-1", NOW)
    assert store.user_by_token(first)["csm_owner"] == "csm-1"
    with store.engine.connect() as conn:
        stored = conn.execute(sa.select(store.users.c.token_sha256)).scalars().all()
    assert stored == [hash_token(first)] and first not in stored
    second = store.add_user("Casey", "csm", "csm-1", NOW)
    assert store.user_by_token(first) is None and store.user_by_token(second)["name"] == "Casey"
    assert store.user_by_token("") is None and store.user_by_token("guess") is None
    assert store.add_user("Lee", "leader", None, NOW) and store.list_users()[1]["csm_owner"] is None


@pytest.mark.parametrize(("name", "role", "message"), [("", "csm", "name must be"), ("Ann", "admin", "role must be one of")])
def test_bad_people_are_refused_naming_the_rule(store: WebStore, name: str, role: str, message: str) -> None:
    with pytest.raises(StoreError, match=message):
        store.add_user(name, role, None, NOW)


def test_play_log_counts_planned_and_done_per_csm(store: WebStore) -> None:
    store.log_play("A1", "csm-1", "Casey", "cross_sell", "planned", None, NOW)
    store.log_play("A1", "csm-1", "Casey", "cross_sell", "contacted", "called", NOW + dt.timedelta(hours=1))
    store.log_play("B1", "csm-2", "Sam", "seat_expansion", "won", None, NOW)
    store.log_play("B1", "csm-2", "Sam", "seat_expansion", "won", None, NOW - dt.timedelta(days=60))  # too old
    counts = store.activity_counts(NOW - dt.timedelta(days=30))
    assert counts.to_dict("records") == [{"csm_owner": "csm-1", "planned": 1, "done": 1},
                                         {"csm_owner": "csm-2", "planned": 0, "done": 1}]
    assert store.activity_counts(NOW - dt.timedelta(days=30), "csm-2")["csm_owner"].tolist() == ["csm-2"]
    plays = store.plays_for("A1")
    assert [p["outcome"] for p in plays] == ["contacted", "planned"] and plays[0]["note"] == "called"
    for kwargs, message in (({"outcome": "sold"}, "outcome: must be one of"), ({"play": " "}, "play: choose"),
                            ({"note": "x" * 2001}, "note: at most 2000")):
        args = {"play": "cross_sell", "outcome": "won", "note": None} | kwargs
        with pytest.raises(StoreError, match=message):
            store.log_play("A1", "csm-1", "Casey", args["play"], args["outcome"], args["note"], NOW)
    assert len(store.plays_for("A1")) == 2  # nothing half-written


def test_score_history_is_empty_before_any_batch_run(store: WebStore) -> None:
    history = store.score_history("A1")
    assert isinstance(history, pd.DataFrame) and history.empty
