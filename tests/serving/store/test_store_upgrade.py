"""A home written by the release before the product store: its state in ``crm.db`` is readable after the upgrade,
moved once into ``state.db`` (said on stderr), nothing lost; and people go to the store, never to ``crm.db``."""

from __future__ import annotations

import datetime as dt
import sqlite3
from pathlib import Path

import pandas as pd
import pytest
import sqlalchemy as sa
from typer.testing import CliRunner

from features.config import Settings
from serving.web.auth import hash_token

#: The tables as the release before the product store created them in <home>/crm.db (SQLite), older columns only:
#: ``forecasts`` as an earlier release wrote it, before ``draw_sd`` and the method columns.
OLD_DDL = """
CREATE TABLE web_users (name TEXT NOT NULL, role TEXT NOT NULL, csm_owner TEXT, token_sha256 TEXT NOT NULL,
    created_at DATETIME NOT NULL, PRIMARY KEY (name), UNIQUE (token_sha256));
CREATE TABLE play_log (id INTEGER NOT NULL, account_id TEXT NOT NULL, csm_owner TEXT, logged_by TEXT NOT NULL,
    play TEXT NOT NULL, outcome TEXT NOT NULL, note TEXT, logged_at DATETIME NOT NULL, PRIMARY KEY (id));
CREATE TABLE play_changes (id INTEGER NOT NULL, play_id INTEGER NOT NULL, changed_by TEXT NOT NULL,
    changed_at DATETIME NOT NULL, old_outcome TEXT NOT NULL, new_outcome TEXT NOT NULL, old_note TEXT, new_note TEXT,
    PRIMARY KEY (id));
CREATE TABLE web_sessions (id_sha256 TEXT NOT NULL, name TEXT NOT NULL, csrf TEXT NOT NULL, expires_at FLOAT NOT NULL,
    PRIMARY KEY (id_sha256));
CREATE TABLE owner_assignments (account_id TEXT NOT NULL, csm_owner TEXT NOT NULL, assigned_by TEXT NOT NULL,
    assigned_at DATETIME NOT NULL, PRIMARY KEY (account_id));
CREATE TABLE alert_runs (as_of DATE NOT NULL, ran_at DATETIME, episodes INTEGER, PRIMARY KEY (as_of));
CREATE TABLE alert_conditions (account_id TEXT NOT NULL, rule TEXT NOT NULL, since DATE, PRIMARY KEY (account_id, rule));
CREATE TABLE alert_episodes (episode_id TEXT NOT NULL, account_id TEXT, rule TEXT, started DATE, csm_owner TEXT,
    status TEXT, expected_value FLOAT, facts TEXT, PRIMARY KEY (episode_id));
CREATE TABLE alert_snoozes (account_id TEXT NOT NULL, rule TEXT NOT NULL, until DATE, PRIMARY KEY (account_id, rule));
CREATE TABLE forecasts (run_id TEXT NOT NULL, group_name TEXT NOT NULL, measure TEXT NOT NULL, as_of DATE NOT NULL,
    horizon_days INTEGER NOT NULL, forecast FLOAT, low80 FLOAT, high80 FLOAT, low95 FLOAT, high95 FLOAT,
    starting_arr FLOAT, models TEXT, stored_at DATETIME, PRIMARY KEY (run_id, group_name, measure));
"""
TOKEN, SESSION = "old-release-token", "old-release-session"
FAR = dt.datetime(2099, 1, 1, tzinfo=dt.UTC).timestamp()


def old_home(home: Path, make_frame) -> Path:  # noqa: ANN001
    """``home/crm.db`` as the previous release left it: people, a session, plays, alert state, a forecast, and two
    score runs written by the CRM sink (whose code path is unchanged)."""
    from serving.scoring.scorer import Scorer, feature_specs
    from serving.sinks.rows import RunInfo
    from serving.sinks.sql import SqlSink

    crm = home / "crm.db"
    sink = SqlSink(f"sqlite:///{crm}")
    frame = make_frame(accounts=20, months=2)
    for day in sorted(frame["as_of"].unique()):
        rows = frame[frame["as_of"] == day].reset_index(drop=True)
        sink.write(RunInfo(pd.Timestamp(day).date(), dt.datetime(2026, 7, 1, tzinfo=dt.UTC)),
                   [Scorer(None, None, feature_specs()).score(rows, with_reasons=True)])
    sink.close()
    con = sqlite3.connect(crm)
    con.executescript(OLD_DDL)
    con.executemany("INSERT INTO web_users VALUES (?,?,?,?,?)", [
        ("Casey", "csm", "csm1", hash_token(TOKEN), "2026-06-01 09:00:00.000000"),
        ("Lee", "leader", None, hash_token("lee-token"), "2026-06-01 09:00:00.000000")])
    con.execute("INSERT INTO web_sessions VALUES (?,?,?,?)", (hash_token(SESSION), "Casey", "csrf-1", FAR))
    con.executemany("INSERT INTO play_log VALUES (?,?,?,?,?,?,?,?)", [
        (1, "acc0001", "csm1", "Casey", "exec sponsor call", "contacted", "went well", "2026-06-02 10:00:00.000000"),
        (2, "acc0002", "csm1", "Lee", "usage review", "planned", None, "2026-06-03 10:00:00.000000")])
    con.execute("INSERT INTO play_changes VALUES (1, 1, 'Casey', '2026-06-04 10:00:00.000000', 'planned', 'contacted', "
                "NULL, 'went well')")
    con.execute("INSERT INTO owner_assignments VALUES ('acc0003', 'csm2', 'Lee', '2026-06-05 10:00:00.000000')")
    con.execute("INSERT INTO alert_runs VALUES ('2026-06-30', '2026-07-01 06:00:00.000000', 1)")
    con.execute("INSERT INTO alert_conditions VALUES ('acc0001', 'usage_drop', '2026-06-30')")
    con.execute("INSERT INTO alert_episodes VALUES ('ep-1', 'acc0001', 'usage_drop', '2026-06-30', 'csm1', 'queued', "
                "1200.0, '{}')")
    con.execute("INSERT INTO alert_snoozes VALUES ('acc0002', 'usage_drop', '2026-08-01')")
    con.execute("INSERT INTO forecasts VALUES ('run-1', 'all', 'expansion_arr', '2026-06-30', 90, 100.0, 80.0, 120.0, "
                "70.0, 130.0, 1000.0, '{}', '2026-07-01 06:00:00.000000')")
    con.commit()
    con.close()
    return crm


def _tables(uri: str) -> dict[str, int]:
    """Rows per table of the database at ``uri``."""
    engine = sa.create_engine(uri)
    with engine.connect() as conn:
        counts = {n: conn.execute(sa.select(sa.func.count()).select_from(sa.table(n))).scalar()
                  for n in sa.inspect(conn).get_table_names()}
    engine.dispose()
    return counts


@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)])
def upgraded(request: pytest.FixtureRequest, tmp_path: Path) -> tuple[Settings, str]:
    """Settings of the upgraded release on ``tmp_path/home``: the default store (SQLite under home) or PostgreSQL."""
    home = tmp_path / "home"
    if request.param == "sqlite":
        return Settings(_env_file=None, home=home), f"sqlite:///{home / 'state.db'}"
    uri = request.getfixturevalue("store_uri")
    return Settings(_env_file=None, home=home, store_uri=uri), uri


def test_an_old_home_is_readable_after_the_upgrade_and_moved_once(upgraded, capsys, make_frame) -> None:  # noqa: ANN001
    from serving.alerts.store import AlertStore
    from serving.store.forecasts import ForecastStore
    from serving.store.monitoring import MonitoringStore
    from serving.web.store import WebStore

    settings, store = upgraded
    crm = old_home(settings.home, make_frame)
    before = _tables(f"sqlite:///{crm}")
    web = WebStore(settings)
    said = capsys.readouterr().err
    assert "moved this home's state" in said and "web_users 2" in said and "account_score_history 40" in said
    assert web.user_by_token(TOKEN)["csm_owner"] == "csm1" and web.user_by_token("lee-token")["role"] == "leader"
    assert web.session(SESSION, now=FAR - 60)["name"] == "Casey"
    plays = web.plays_for("acc0001")
    assert [p["outcome"] for p in plays] == ["contacted"] and plays[0]["changes"][0]["old_outcome"] == "planned"
    assert web.assignments()["acc0003"]["csm_owner"] == "csm2"
    assert len(web.score_history("acc0001")) == 2
    new_id = web.log_play("acc0004", "csm1", "Casey", "usage review", "planned", None, dt.datetime.now(dt.UTC))
    assert new_id == 3  # ids go on after the copied ones
    web.close()

    alerts = AlertStore(settings)
    assert alerts.last_run() == dt.date(2026, 6, 30) and alerts.snoozed(dt.date(2026, 7, 15)) == {("acc0002", "usage_drop")}
    assert alerts.conditions()["since"].tolist() == [dt.date(2026, 6, 30)] and len(alerts.table("episodes")) == 1
    alerts.close()
    forecasts = ForecastStore(settings)
    stored = forecasts.read()
    assert stored["forecast"].tolist() == [100.0] and stored["draw_sd"].isna().all()  # the newer column, added empty
    forecasts.close()
    monitoring = MonitoringStore(settings)
    assert monitoring.history_runs()["accounts"].tolist() == [20, 20]
    monitoring.close()

    again = WebStore(settings)  # the move happens once: a second open copies nothing
    assert capsys.readouterr().err == "" and len(again.list_users()) == 2
    again.close()
    after = _tables(store)
    assert {n: after[n] for n in before if n in after and n != "play_log"} == {
        n: c for n, c in before.items() if n in after and n != "play_log"}
    assert after["play_log"] == before["play_log"] + 1
    assert _tables(f"sqlite:///{crm}") == before  # crm.db keeps everything it had
    if store.startswith("sqlite"):
        assert oct((settings.home / "state.db").stat().st_mode & 0o777) == "0o600"


def test_users_go_to_the_store_whatever_the_crm_uri_says(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from serving.cli import app
    from serving.web.store import WebStore

    home = tmp_path / "home"
    monkeypatch.setenv("EXPANSION_HOME", str(home))
    monkeypatch.setenv("EXPANSION_CRM_URI", f"sqlite:///{tmp_path / 'elsewhere.db'}")
    added = CliRunner().invoke(app, ["users", "add", "probe", "--role", "leader"])
    assert added.exit_code == 0, added.output
    assert not (home / "crm.db").exists() and not (tmp_path / "elsewhere.db").exists()
    store = WebStore(f"sqlite:///{home / 'state.db'}")
    assert [u["name"] for u in store.list_users()] == ["probe"]
    store.close()

    monkeypatch.setenv("EXPANSION_STORE_URI", f"sqlite:///{tmp_path / 'shared.db'}")
    assert CliRunner().invoke(app, ["users", "add", "second", "--role", "leader"]).exit_code == 0
    shared = WebStore(f"sqlite:///{tmp_path / 'shared.db'}")
    assert [u["name"] for u in shared.list_users()] == ["second"]
    shared.close()
