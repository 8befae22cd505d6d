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
    web.metadata.drop_all(web.engine, checkfirst=True)  # every table of the prefixed store
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


def test_play_log_credits_whoever_logged_the_play(store: WebStore) -> None:
    store.add_user("Casey", "csm", "csm-1", NOW)
    store.log_play("A1", "csm-1", "Casey", "cross_sell", "planned", None, NOW)
    store.log_play("A1", "csm-1", "Casey", "cross_sell", "contacted", "called", NOW + dt.timedelta(hours=1))
    store.log_play("B1", "csm-2", "Casey", "seat_expansion", "won", None, NOW)  # on another CSM's account
    store.log_play("B1", "csm-2", "Sam", "seat_expansion", "won", None, NOW)
    store.log_play("B1", "csm-2", "Sam", "seat_expansion", "won", None, NOW - dt.timedelta(days=60))  # too old
    counts = store.activity_counts(NOW - dt.timedelta(days=30))
    assert counts.to_dict("records") == [{"logged_by": "Casey", "csm_owner": "csm-1", "planned": 1, "done": 2},
                                         {"logged_by": "Sam", "csm_owner": None, "planned": 0, "done": 1}]
    assert store.activity_counts(NOW - dt.timedelta(days=30), "Sam")["logged_by"].tolist() == ["Sam"]
    plays = store.plays_for("A1")
    assert [p["outcome"] for p in plays] == ["contacted", "planned"] and plays[0]["note"] == "called"
    for kwargs, message in (({"outcome": "sold"}, "outcome: must be one of"), ({"play": " "}, "play: choose"),
                            ({"note": "x" * 2001}, "note: at most 2000")):
        args = {"play": "cross_sell", "outcome": "won", "note": None} | kwargs
        with pytest.raises(StoreError, match=message):
            store.log_play("A1", "csm-1", "Casey", args["play"], args["outcome"], args["note"], NOW)
    assert len(store.plays_for("A1")) == 2  # nothing half-written


def test_a_play_moves_on_by_its_author_or_a_leader_keeping_its_history(store: WebStore) -> None:
    play = store.log_play("A1", "csm-1", "Casey", "cross_sell", "planned", "first call Tuesday", NOW)
    store.update_play(play, "A1", "Casey", False, "contacted", "spoke to the VP", NOW + dt.timedelta(days=1))
    with pytest.raises(StoreError, match="only Casey .* or a leader"):
        store.update_play(play, "A1", "Sam", False, "lost", None, NOW + dt.timedelta(days=2))
    with pytest.raises(StoreError, match="no play"):
        store.update_play(play, "B1", "Casey", False, "won", None, NOW)  # the id of another account's play
    with pytest.raises(StoreError, match="outcome: must be one of"):
        store.update_play(play, "A1", "Casey", False, "sold", None, NOW)
    store.update_play(play, "A1", "Lee", True, "won", "signed", NOW + dt.timedelta(days=3))
    [logged] = store.plays_for("A1")
    assert (logged["outcome"], logged["note"], logged["logged_by"]) == ("won", "signed", "Casey")
    assert [(c["changed_by"], c["old_outcome"], c["new_outcome"], c["old_note"]) for c in logged["changes"]] == [
        ("Casey", "planned", "contacted", "first call Tuesday"), ("Lee", "contacted", "won", "spoke to the VP")]


def test_sessions_end_on_sign_out_new_token_disable_and_remove(store: WebStore) -> None:
    store.add_user("Casey", "csm", "csm-1", NOW)
    sid, csrf = store.open_session("Casey", 2_000.0)
    live = store.session(sid, 1_000.0)
    assert live["name"] == "Casey" and live["csrf"] == csrf and live["csm_owner"] == "csm-1"
    assert store.session(sid, 2_000.0) is None  # expired
    assert store.session("guess", 1_000.0) is None and store.session(None, 1_000.0) is None
    with store.engine.connect() as conn:
        assert sid not in conn.execute(sa.select(store.sessions.c.id_sha256)).scalars().all()  # only its hash
    store.end_session(sid)
    assert store.session(sid, 1_000.0) is None
    sid, _ = store.open_session("Casey", 2_000.0)
    token = store.add_user("Casey", "csm", "csm-1", NOW)  # a new token ends the old sessions
    assert store.session(sid, 1_000.0) is None
    sid, _ = store.open_session("Casey", 2_000.0)
    store.disable_user("Casey")
    assert store.session(sid, 1_000.0) is None and store.user_by_token(token) is None
    assert store.list_users()[0]["disabled"] is True
    token = store.add_user("Casey", "csm", "csm-1", NOW)  # enabled again with a new token
    assert store.user_by_token(token)["name"] == "Casey" and store.list_users()[0]["disabled"] is False
    sid, _ = store.open_session("Casey", 2_000.0)
    store.remove_user("Casey")
    assert store.session(sid, 1_000.0) is None and store.list_users() == []
    with pytest.raises(StoreError, match="no person named 'Casey'"):
        store.disable_user("Casey")


def test_an_owner_assignment_is_kept_and_removed(store: WebStore) -> None:
    store.assign_owner("A1", "csm-3", "Lee", NOW)
    assert store.assignments()["A1"]["csm_owner"] == "csm-3"
    store.assign_owner("A1", "csm-4", "Lee", NOW)
    assert store.assignments()["A1"]["csm_owner"] == "csm-4"
    store.assign_owner("A1", "", "Lee", NOW)
    assert store.assignments() == {}


def test_score_history_is_empty_before_any_batch_run(store: WebStore) -> None:
    history = store.score_history("A1")
    assert isinstance(history, pd.DataFrame) and history.empty


def test_a_play_records_the_amount_won_the_reason_lost_and_the_planned_date(store: WebStore) -> None:
    won = store.log_play("A1", "kim", "Kim", "upgrade_conversation", "won", None, NOW, amount=450.0)
    store.log_play("A2", "kim", "Kim", "cross_sell", "not_now", None, NOW, reason_code="bad_timing")
    store.log_play("A3", "kim", "Kim", "seat_expansion", "planned", None, NOW, planned_for=dt.date(2026, 7, 15))
    with pytest.raises(StoreError, match="reason_code: must be one of"):
        store.log_play("A4", "kim", "Kim", "cross_sell", "lost", None, NOW, reason_code="aliens")
    with pytest.raises(StoreError, match="amount: only a play whose outcome is won"):
        store.log_play("A4", "kim", "Kim", "cross_sell", "lost", None, NOW, amount=10.0)
    with pytest.raises(StoreError, match="amount: must be a number >= 0"):
        store.log_play("A4", "kim", "Kim", "cross_sell", "won", None, NOW, amount=-5.0)
    log = store.log_frame().set_index("account_id")
    assert list(log.index) == ["A1", "A2", "A3"]  # nothing half-written by the refused ones
    assert log.at["A1", "amount"] == 450.0 and log.at["A2", "reason_code"] == "bad_timing"
    assert pd.Timestamp(log.at["A3", "planned_for"]) == pd.Timestamp("2026-07-15")
    store.update_play(won, "A1", "Kim", False, "won", None, NOW, amount=500.0)
    assert store.log_frame().set_index("account_id").at["A1", "amount"] == 500.0


def test_a_play_log_made_before_the_detail_columns_gains_them(sql_sink_uri: tuple[str, str]) -> None:
    uri, prefix = sql_sink_uri
    engine = sa.create_engine(uri)
    earlier = sa.Table(f"{prefix}play_log", sa.MetaData(),  # the table as an earlier release declared it
                       sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
                       *(sa.Column(c, sa.Text) for c in ("account_id", "csm_owner", "logged_by", "play", "outcome",
                                                          "note")),
                       sa.Column("logged_at", sa.DateTime(timezone=True)))
    with engine.begin() as conn:
        earlier.create(conn)
        conn.execute(sa.insert(earlier), [{"account_id": "A1", "logged_by": "Kim", "play": "cross_sell",
                                            "outcome": "contacted", "logged_at": NOW}])
    engine.dispose()
    new = WebStore(uri, table_prefix=prefix)
    try:
        new.log_play("A2", None, "Kim", "cross_sell", "won", None, NOW, amount=99.0)
        log = new.log_frame()
        assert log["account_id"].tolist() == ["A1", "A2"] and pd.isna(log["amount"].iloc[0])
        assert log["amount"].iloc[1] == 99.0
    finally:
        with new.engine.begin() as conn:
            for table in ("web_users", "play_log", "play_changes", "web_sessions", "owner_assignments"):
                conn.exec_driver_sql(f'DROP TABLE IF EXISTS "{prefix}{table}"')
        new.close()
