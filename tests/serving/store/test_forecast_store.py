"""Stored forecasts: idempotent writes on SQLite and PostgreSQL, the track record, and POST /forecast."""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator

import pandas as pd
import pytest

from serving.api.forecast import ForecastRequest, stored_forecast
from serving.store.forecasts import ForecastStore, track
from training.forecast import MEASURES

STORED_AT = dt.datetime(2026, 4, 1, 6, tzinfo=dt.UTC)


def _table(scale: float = 1.0) -> pd.DataFrame:
    rows = []
    for group, start in (("all", 3000.0), ("smb", 1000.0), ("enterprise", 2000.0)):
        r = {"group": group, "accounts": 3, "starting_arr": start}
        for m, value in zip(MEASURES, (300.0 * scale, 50.0, 100.0, 105.0)):
            r[m] = value * (start / 3000 if m != "nrr_pct" else 1)
            r[f"{m}_low80"], r[f"{m}_high80"] = r[m] * 0.9, r[m] * 1.1
            r[f"{m}_low95"], r[f"{m}_high95"] = r[m] * 0.8, r[m] * 1.2
        rows.append(r)
    return pd.DataFrame(rows)


@pytest.fixture(params=["sqlite", "postgresql"])
def store(request: pytest.FixtureRequest, tmp_path) -> Iterator[ForecastStore]:  # noqa: ANN001
    import uuid

    if request.param == "sqlite":
        s = ForecastStore(f"sqlite:///{tmp_path / 'crm.db'}")
        yield s
        s.close()
        return
    s = ForecastStore(request.getfixturevalue("postgres_url"), table_prefix=f"t{uuid.uuid4().hex[:10]}_")
    yield s
    with s.engine.begin() as conn:
        s.metadata.drop_all(conn, checkfirst=True)
    s.close()


def test_a_run_written_twice_changes_nothing_and_a_rerun_replaces(store: ForecastStore) -> None:
    models = {"expansion": "3", "churn": "2"}
    assert store.write("run-a", dt.date(2026, 3, 31), 90, _table(), models, STORED_AT) == 12
    store.write("run-a", dt.date(2026, 3, 31), 90, _table(), models, STORED_AT)
    rows = store.read()
    assert len(rows) == 12 and set(rows["measure"]) == set(MEASURES)
    store.write("run-a", dt.date(2026, 3, 31), 90, _table(scale=2.0), models, STORED_AT)
    again = store.read()
    assert len(again) == 12
    total = again[(again.group_name == "all") & (again.measure == "expansion_arr")]
    assert total["forecast"].item() == pytest.approx(600.0)


def test_the_draws_sd_is_kept_and_a_table_of_the_earlier_version_gains_the_column(store: ForecastStore) -> None:
    import sqlalchemy as sa

    old = sa.MetaData()  # the table as the version before the draw sd wrote it
    sa.Table(store.table.name, old, *(sa.Column(c.name, c.type, primary_key=c.primary_key)
                                      for c in store.table.columns if c.name != "draw_sd"))
    with store.engine.begin() as conn:
        old.create_all(conn)
        conn.execute(old.tables[store.table.name].insert(), [{
            "run_id": "before", "group_name": "all", "measure": "expansion_arr", "as_of": dt.date(2025, 12, 31),
            "horizon_days": 90, "forecast": 280.0}])
    assert store.read()["draw_sd"].isna().all()  # readable before any new write
    table = _table().assign(expansion_arr_draw_sd=12.5)
    store.write("after", dt.date(2026, 3, 31), 90, table, {}, STORED_AT)
    rows = store.read().set_index(["run_id", "group_name", "measure"])
    assert rows.loc[("after", "smb", "expansion_arr"), "draw_sd"] == 12.5
    assert pd.isna(rows.loc[("after", "smb", "nrr_pct"), "draw_sd"])  # a table without the sd stores none
    assert pd.isna(rows.loc[("before", "all", "expansion_arr"), "draw_sd"]) and len(rows) == 13


def test_track_compares_due_forecasts_with_what_happened(store: ForecastStore) -> None:
    store.write("old", dt.date(2026, 1, 31), 90, _table(), {}, STORED_AT)
    store.write("new", dt.date(2026, 3, 31), 90, _table(), {}, STORED_AT)
    actual = pd.DataFrame({"as_of": [dt.date(2026, 1, 31)] * 2, "group": ["all", "smb"],
                           "expansion_arr": [320.0, 150.0], "contraction_arr": [50.0, 0.0],
                           "churned_arr": [100.0, 10.0], "nrr_pct": [105.0, 110.0]})
    out = track(store.read(), actual, dt.date(2026, 5, 31))
    assert set(out["run_id"]) == {"old"}  # the newer forecast's horizon has not passed
    exp = out[(out.group_name == "all") & (out.measure == "expansion_arr")].iloc[0]
    assert exp["actual"] == 320.0 and exp["in80"] and exp["error_pct"] == pytest.approx(100 * (300 - 320) / 320)
    smb = out[(out.group_name == "smb") & (out.measure == "expansion_arr")].iloc[0]
    assert not smb["in80"] and not smb["in95"]  # 150 against 100 [80, 120]


def test_stored_forecast_answers_newest_or_as_of_and_one_group(tmp_path) -> None:  # noqa: ANN001
    uri = f"sqlite:///{tmp_path / 'crm.db'}"
    assert not stored_forecast(uri, ForecastRequest()).found  # nothing stored yet
    s = ForecastStore(uri)
    s.write("jan", dt.date(2026, 1, 31), 90, _table(), {"expansion": "1"}, STORED_AT)
    s.write("mar", dt.date(2026, 3, 31), 90, _table(2.0), {"expansion": "2"}, STORED_AT)
    newest = stored_forecast(uri, ForecastRequest())
    assert (newest.run_id, newest.as_of, newest.models) == ("mar", "2026-03-31", {"expansion": "2"})
    assert len(newest.figures) == 12
    jan = stored_forecast(uri, ForecastRequest(as_of=dt.date(2026, 2, 15), group="smb"))
    assert jan.run_id == "jan" and {f.group for f in jan.figures} == {"smb"} and len(jan.figures) == 4
    assert not stored_forecast(uri, ForecastRequest(as_of=dt.date(2025, 12, 31))).found


def test_post_forecast_needs_the_key_and_serves_the_stored_forecast(monkeypatch, tmp_path, make_frame) -> None:  # noqa: ANN001
    from starlette.testclient import TestClient

    from serving.scoring.bento_adapter import reset_request_metrics

    snapshot = tmp_path / "snapshot.parquet"
    make_frame().drop(columns=["expanded", "churned"]).to_parquet(snapshot)
    monkeypatch.setenv("EXPANSION_SNAPSHOT_PATH", str(snapshot))
    monkeypatch.setenv("EXPANSION_MODEL_SOURCE", "none")
    monkeypatch.setenv("EXPANSION_HOME", str(tmp_path))
    monkeypatch.setenv("EXPANSION_API_KEY", "k3y-0123456789abcdefghijkl")
    monkeypatch.delenv("EXPANSION_INSECURE", raising=False)
    ForecastStore(f"sqlite:///{(tmp_path / 'crm.db').resolve()}").write(
        "mar", dt.date(2026, 3, 31), 90, _table(), {"expansion": "2"}, STORED_AT)
    from serving.api.service import ExpansionScoring

    reset_request_metrics()
    with TestClient(ExpansionScoring.to_asgi()) as c:
        assert c.post("/forecast", json={}).status_code == 401
        answer = c.post("/forecast", json={"group": "all"}, headers={"Authorization": "Bearer k3y-0123456789abcdefghijkl"})
        assert answer.status_code == 200, answer.text
        body = answer.json()
        assert body["found"] and body["run_id"] == "mar" and len(body["figures"]) == 4
        bad = c.post("/forecast", json={"as_of": "soon"}, headers={"Authorization": "Bearer k3y-0123456789abcdefghijkl"})
        assert bad.status_code == 400


def test_the_method_in_force_and_its_record_are_stored_and_served(store: ForecastStore, tmp_path) -> None:  # noqa: ANN001
    table = _table()
    for m in MEASURES:
        table[f"{m}_method"] = ["naive_mean4", "model", "blend"]
        table[f"{m}_past_error_pts"], table[f"{m}_past_cutoffs"] = [0.4, 0.9, 0.6], [8, 8, 7]
        table[f"{m}_bias_pts"], table[f"{m}_interval"] = [0.1, -0.2, 0.0], "track record"
        table[f"{m}_model"] = table[m] * 1.5
    store.write("run-m", dt.date(2026, 3, 31), 90, table, {"expansion": "3"}, STORED_AT)
    rows = store.read().set_index(["group_name", "measure"])
    assert rows.loc[("all", "expansion_arr"), "method"] == "naive_mean4"
    assert rows.loc[("smb", "nrr_pct"), "past_cutoffs"] == 8
    assert rows.loc[("all", "expansion_arr"), "model_forecast"] == pytest.approx(450.0)
    record = pd.DataFrame({"cutoff": pd.to_datetime(["2025-12-31", "2026-01-31"]), "group": "all",
                           "measure": "expansion_arr", "method": "model", "forecast": [10.0, 11.0],
                           "actual": [9.0, 12.0], "starting_arr": 100.0})
    assert store.write_record(90, record, STORED_AT) == 2
    store.write_record(90, record.iloc[:1], STORED_AT)  # a new backtest replaces the record of its horizon
    back = store.read_record(90)
    assert len(back) == 1 and back["actual"].item() == 9.0 and store.read_record(30).empty
    if store.engine.dialect.name == "sqlite":
        served = stored_forecast(str(store.engine.url), ForecastRequest(group="all"))
        fig = next(f for f in served.figures if f.measure == "expansion_arr")
        assert (fig.method, fig.past_cutoffs, fig.interval_basis) == ("naive_mean4", 8, "track record")
