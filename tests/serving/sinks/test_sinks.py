"""CRM sinks on score frames shaped like the scorer's output: round trips, formats, all-or-nothing, idempotence."""

from __future__ import annotations

import datetime as dt
import io
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow.parquet as pq
import pytest

from features.config import Settings
from serving.sinks import RunInfo, SinkError, open_sink
from serving.sinks.rows import REASON_COLUMNS, ScoreFrameError

RUN = RunInfo(dt.date(2024, 6, 30), dt.datetime(2024, 7, 1, 5, 30, tzinfo=dt.UTC), {"expansion": "3", "churn": "2"})
NEXT_RUN = RunInfo(dt.date(2024, 7, 31), dt.datetime(2024, 8, 1, 5, 30, tzinfo=dt.UTC), {"expansion": "3", "churn": "2"})
REASONS = ["API calls at 86 % of plan limit", 'usage up 45 %, over 30 days', 'said "great" in Zürich', "3 urgent tickets"]


def score_frame(ids: list[str], seed: int = 0) -> pd.DataFrame:
    """A frame with exactly the scorer's fields; account i gets i % 5 reasons (0 to 4)."""
    rng = np.random.default_rng(seed)
    n = len(ids)
    return pd.DataFrame(
        {
            "account_id": ids,
            "expansion_probability": rng.random(n),
            "churn_probability": rng.random(n),
            "readiness_score": rng.uniform(0, 100, n).round(1),
            "readiness_band": rng.choice(["outreach", "nurture", "adoption"], n),
            "health": rng.choice(["green", "yellow", "red"], n),
            "reasons": [REASONS[: i % 5] for i in range(n)],
            "whitespace_usd": rng.uniform(0, 2_000_000, n),
            "expected_expansion_usd": [None if i % 7 == 0 else v for i, v in enumerate(rng.uniform(0, 1e5, n))],
            "recommended_play": rng.choice(["upgrade_talk", "exec_sponsor", "adoption_first"], n),
            "baseline_score": rng.uniform(0, 100, n),
            "baseline_band": rng.choice(["outreach", "nurture", "adoption"], n),
            "model_versions": [{"expansion": "3", "churn": "2"}] * n,
        }
    )


def chunks_of(ids: list[str], size: int, seed: int = 0, fail_at: int | None = None) -> Iterator[pd.DataFrame]:
    """Score frames in chunks; raises on chunk number ``fail_at`` (1-based) to simulate a crash mid-run."""
    frame = score_frame(ids, seed)
    for number, start in enumerate(range(0, len(frame), size), start=1):
        if number == fail_at:
            raise RuntimeError(f"scorer failed on chunk {number}")
        yield frame.iloc[start : start + size]


IDS = [f"acc-{i:04d}" for i in range(23)]
FILE_SCHEMES = ["csv", "parquet", "salesforce", "hubspot"]


def file_uri(scheme: str, tmp_path: Path) -> str:
    return f"{scheme}:{tmp_path / ('out.parquet' if scheme == 'parquet' else 'out.csv')}"


def test_csv_round_trip_flattens_reasons_and_adds_run_fields(tmp_path: Path) -> None:
    sink = open_sink(f"csv:{tmp_path / 'scores.csv'}", Settings())
    assert sink.write(RUN, chunks_of(IDS, 5)) == len(IDS)
    back = pd.read_csv(tmp_path / "scores.csv", dtype={"account_id": str}, keep_default_na=False, na_values=[""])
    expected = score_frame(IDS)
    assert list(back["account_id"]) == IDS
    np.testing.assert_allclose(back["expansion_probability"], expected["expansion_probability"])
    for i, reasons in enumerate(expected["reasons"]):
        got = [back.loc[i, c] for c in REASON_COLUMNS]
        assert got[: len(reasons)] == reasons and all(pd.isna(v) for v in got[len(reasons) :])
    assert set(back["run_id"]) == {RUN.run_id}
    assert set(back["as_of"]) == {"2024-06-30"} and set(back["scored_at"]) == {"2024-07-01T05:30:00Z"}
    assert set(back["expansion_model_version"].astype(str)) == {"3"}
    assert "model_versions" not in back.columns  # flattened into one column per model


def test_parquet_round_trip_keeps_types(tmp_path: Path) -> None:
    sink = open_sink(f"parquet:{tmp_path / 'scores.parquet'}", Settings())
    sink.write(RUN, chunks_of(IDS, 4))
    table = pq.read_table(tmp_path / "scores.parquet")
    assert str(table.schema.field("as_of").type) == "date32[day]"
    assert table.schema.field("scored_at").type.tz == "UTC"
    back = table.to_pandas()
    expected = score_frame(IDS)
    assert list(back["account_id"]) == IDS
    np.testing.assert_allclose(back["whitespace_usd"], expected["whitespace_usd"])
    assert back["expected_expansion_usd"].isna().sum() == expected["expected_expansion_usd"].isna().sum()
    assert back.loc[4, "reason_4"] == REASONS[3] and pd.isna(back.loc[3, "reason_4"])
    prev = sink.previous_scores()
    assert list(prev["account_id"]) == IDS and list(prev["readiness_score"]) == list(expected["readiness_score"])


@pytest.mark.parametrize("scheme", FILE_SCHEMES)
def test_file_run_failing_midway_leaves_previous_file_whole(scheme: str, tmp_path: Path) -> None:
    uri = file_uri(scheme, tmp_path)
    sink = open_sink(uri, Settings())
    sink.write(RUN, chunks_of(IDS, 5))
    target = Path(uri.split(":", 1)[1])
    before = target.read_bytes()
    with pytest.raises(RuntimeError, match="chunk 3"):
        sink.write(NEXT_RUN, chunks_of(IDS, 5, seed=1, fail_at=3))
    assert target.read_bytes() == before
    assert sorted(p.name for p in tmp_path.iterdir()) == [target.name]  # no partial file left behind


@pytest.mark.parametrize("scheme", FILE_SCHEMES)
def test_file_rewrite_of_same_run_gives_the_same_content(scheme: str, tmp_path: Path) -> None:
    uri = file_uri(scheme, tmp_path)
    target = Path(uri.split(":", 1)[1])
    def content() -> object:  # Parquet bytes depend on row groups (chunking), its table must not
        return pq.read_table(target) if scheme == "parquet" else target.read_bytes()

    open_sink(uri, Settings()).write(RUN, chunks_of(IDS, 5))
    first = content()
    open_sink(uri, Settings()).write(RUN, chunks_of(IDS, 7))
    assert content() == first


def test_salesforce_file_follows_bulk_api_formats(tmp_path: Path) -> None:
    frame = score_frame(IDS[:8])
    frame.loc[1, "whitespace_usd"] = 1234567.891
    frame.loc[1, "expansion_probability"] = 0.42346
    frame.loc[2, "expansion_probability"] = 1e-7
    open_sink(f"salesforce:{tmp_path / 'sf.csv'}", Settings()).write(RUN, [frame])
    raw = (tmp_path / "sf.csv").read_bytes()
    text = raw.decode("utf-8")
    assert text.count("\r\n") == 9 and "\n" not in text.replace("\r\n", "")  # header + 8 rows, CRLF only
    back = pd.read_csv(io.StringIO(text), dtype=str, keep_default_na=False)
    assert back.columns[0] == "External_Account_Id__c" and "Expansion_Readiness__c" in back.columns
    row = back.iloc[1]
    assert row["Whitespace_Amount__c"] == "1234567.89"  # no thousands separator, no exponent
    assert row["Expansion_Probability__c"] == "42.35"  # Percent fields take 0-100
    assert back.iloc[2]["Expansion_Probability__c"] == "0.00"
    assert row["Expansion_Snapshot_Date__c"] == "2024-06-30"
    assert row["Expansion_Scored_At__c"] == "2024-07-01T05:30:00Z"
    # a null is #N/A so that the upsert clears a reason that is gone (an empty cell would keep the old one)
    assert back.iloc[0]["Expansion_Reason_1__c"] == "#N/A" and back.iloc[0]["Expected_Expansion_Amount__c"] == "#N/A"
    assert back.iloc[3]["Expansion_Reason_2__c"] == REASONS[1] and back.iloc[3]["Expansion_Reason_3__c"] == REASONS[2]
    assert '"usage up 45 %, over 30 days"' in text and '"said ""great"" in Zürich"' in text


def test_salesforce_field_names_are_configurable_and_checked(tmp_path: Path) -> None:
    path = tmp_path / "sf.csv"
    mapping = {"account_id": "Acme_Key__c", "readiness_score": "Acme_Score__c", "baseline_score": ""}
    sink = open_sink(f"salesforce:{path}", Settings(), field_map=mapping)
    sink.write(RUN, [score_frame(IDS[:3])])
    header = path.read_text().splitlines()[0].split(",")
    assert header[0] == "Acme_Key__c" and "Acme_Score__c" in header
    assert "Baseline_Readiness__c" not in header and "Expansion_Readiness__c" not in header
    assert list(sink.previous_scores()["account_id"]) == IDS[:3]
    with pytest.raises(ValueError, match="unknown row field.*readiness"):
        open_sink(f"salesforce:{path}", Settings(), field_map={"readiness": "X__c"})
    with pytest.raises(ValueError, match="Same__c"):
        open_sink(f"salesforce:{path}", Settings(), field_map={"health": "Same__c", "run_id": "Same__c"})
    with pytest.raises(ValueError, match="upsert key"):
        open_sink(f"salesforce:{path}", Settings(), field_map={"account_id": ""})


def test_hubspot_file_uses_property_names_lf_and_blank_nulls(tmp_path: Path) -> None:
    path = tmp_path / "hs.csv"
    open_sink(f"hubspot:{path}", Settings(), field_map={"health": "cs_health"}).write(RUN, [score_frame(IDS[:6])])
    text = path.read_bytes().decode("utf-8")
    assert "\r" not in text and text.count("\n") == 7
    back = pd.read_csv(io.StringIO(text), dtype=str, keep_default_na=False)
    assert back.columns[0] == "external_account_id" and "cs_health" in back.columns
    assert back.iloc[0]["expansion_reason_1"] == ""
    probability = score_frame(IDS[:6])["expansion_probability"].iloc[2]
    assert back.iloc[2]["expansion_probability"] == f"{probability:.4f}"  # a 0-1 number
    assert back.iloc[2]["expansion_snapshot_date"] == "2024-06-30"


def test_sql_round_trip_current_and_history(sql_sink_uri: tuple[str, str]) -> None:
    uri, prefix = sql_sink_uri
    sink = open_sink(uri, Settings(), table_prefix=prefix)
    try:
        assert sink.previous_scores() is None
        sink.write(RUN, chunks_of(IDS, 6))
        current, history = sink.read_table("current"), sink.read_table("history")
        expected = score_frame(IDS)
        assert list(current["account_id"]) == IDS and len(history) == len(IDS)
        np.testing.assert_allclose(current["churn_probability"], expected["churn_probability"])
        assert set(current["run_id"]) == {RUN.run_id} and set(current["churn_model_version"]) == {"2"}
        assert {str(d)[:10] for d in current["as_of"]} == {"2024-06-30"}
        assert current.loc[4, "reason_4"] == REASONS[3] and current["reason_1"].isna().sum() == 5
        assert current["expected_expansion_usd"].isna().sum() == expected["expected_expansion_usd"].isna().sum()
    finally:
        sink.close()


def test_sql_run_failing_midway_leaves_previous_scores_whole(sql_sink_uri: tuple[str, str]) -> None:
    uri, prefix = sql_sink_uri
    sink = open_sink(uri, Settings(), table_prefix=prefix)
    try:
        sink.write(RUN, chunks_of(IDS, 5))
        current, history = sink.read_table("current"), sink.read_table("history")
        with pytest.raises(RuntimeError, match="chunk 3"):
            sink.write(NEXT_RUN, chunks_of(IDS + ["acc-new"], 5, seed=1, fail_at=3))
        pd.testing.assert_frame_equal(sink.read_table("current"), current)
        pd.testing.assert_frame_equal(sink.read_table("history"), history)
    finally:
        sink.close()


def test_sql_rewrite_is_idempotent_and_a_new_snapshot_appends_history(sql_sink_uri: tuple[str, str]) -> None:
    uri, prefix = sql_sink_uri
    sink = open_sink(uri, Settings(), table_prefix=prefix)
    try:
        sink.write(RUN, chunks_of(IDS, 5))
        current, history = sink.read_table("current"), sink.read_table("history")
        later = RunInfo(RUN.as_of, RUN.scored_at + dt.timedelta(hours=3), RUN.model_versions)
        sink.write(later, chunks_of(IDS, 9))  # same snapshot and models, re-run later in other chunks
        pd.testing.assert_frame_equal(sink.read_table("current"), current)  # nothing changed, not even scored_at
        pd.testing.assert_frame_equal(sink.read_table("history"), history)

        remaining = IDS[2:] + ["acc-new"]
        sink.write(NEXT_RUN, chunks_of(remaining, 5, seed=1))
        current = sink.read_table("current")
        assert list(current["account_id"]) == sorted(remaining)  # accounts gone from the run leave the current table
        assert set(current["run_id"]) == {NEXT_RUN.run_id}
        history = sink.read_table("history")
        assert history.groupby("run_id").size().to_dict() == {RUN.run_id: len(IDS), NEXT_RUN.run_id: len(remaining)}
        assert not history.duplicated(["account_id", "run_id"]).any()
    finally:
        sink.close()


def test_sql_rejects_an_account_twice_in_one_run(sql_sink_uri: tuple[str, str]) -> None:
    uri, prefix = sql_sink_uri
    sink = open_sink(uri, Settings(), table_prefix=prefix)
    try:
        with pytest.raises(Exception, match="(?i)unique|duplicate"):
            sink.write(RUN, [score_frame(IDS[:3]), score_frame(IDS[2:4])])
        assert sink.previous_scores() is None
    finally:
        sink.close()


def test_run_id_is_deterministic_from_snapshot_and_models() -> None:
    again = RunInfo(RUN.as_of, RUN.scored_at + dt.timedelta(days=1), {"churn": "2", "expansion": "3"})
    assert again.run_id == RUN.run_id
    assert RunInfo(RUN.as_of, RUN.scored_at, {"expansion": "4", "churn": "2"}).run_id != RUN.run_id
    assert NEXT_RUN.run_id != RUN.run_id and RUN.run_id.startswith("20240630-")
    with pytest.raises(ValueError, match="timezone-aware"):
        RunInfo(RUN.as_of, dt.datetime(2024, 7, 1), {})


def test_bad_uris_and_frames_get_clear_errors(tmp_path: Path) -> None:
    with pytest.raises(SinkError, match="unknown scheme 'ftp'"):
        open_sink("ftp://host/x", Settings())
    with pytest.raises(SinkError, match="missing a file path"):
        open_sink("csv:", Settings())
    with pytest.raises(SinkError, match="field map applies only"):
        open_sink(f"csv:{tmp_path / 'a.csv'}", Settings(), field_map={"health": "h"})
    frame = score_frame(IDS[:3]).drop(columns=["churn_probability", "health"])
    with pytest.raises(ScoreFrameError, match="churn_probability, health"):
        open_sink(f"csv:{tmp_path / 'a.csv'}", Settings()).write(RUN, [frame])
    assert not (tmp_path / "a.csv").exists()


def test_a_crm_table_from_an_earlier_release_gets_the_run_id_columns(tmp_path: Path) -> None:
    import sqlalchemy as sa

    uri = f"sqlite:///{tmp_path / 'crm.db'}"
    engine = sa.create_engine(uri)
    with engine.begin() as conn:  # the table as the release before model run ids made it
        conn.exec_driver_sql('CREATE TABLE account_scores (account_id VARCHAR PRIMARY KEY, run_id VARCHAR)')
    engine.dispose()
    run = RunInfo(RUN.as_of, RUN.scored_at, {"expansion": "1", "churn": "1"},
                  {"expansion": "a" * 32, "churn": "b" * 32})
    frame = score_frame(IDS[:3])
    open_sink(uri, Settings()).write(run, [frame])
    current = open_sink(uri, Settings()).read_table("current")
    assert (current["expansion_model_run_id"] == "a" * 32).all() and (current["churn_model_run_id"] == "b" * 32).all()
    assert current["model_available"].astype(bool).all()  # models made these rows
    assert run.run_id != RUN.run_id  # same date and versions, other runs: another scoring run
    baseline = RunInfo(RUN.as_of, RUN.scored_at, {"expansion": None, "churn": None})
    open_sink(uri, Settings()).write(baseline, [score_frame(IDS[:3]).drop(columns="model_available", errors="ignore")])
    assert not open_sink(uri, Settings()).read_table("current")["model_available"].astype(bool).any()


def test_sql_run_on_an_older_snapshot_writes_history_and_keeps_newer_current_scores(sql_sink_uri: tuple[str, str]) -> None:
    uri, prefix = sql_sink_uri
    sink = open_sink(uri, Settings(), table_prefix=prefix)
    try:
        sink.write(NEXT_RUN, chunks_of(IDS, 5, seed=1))
        current = sink.read_table("current")
        assert sink.kept_newer is None
        older = IDS[3:]  # a backfill of the month before, where fewer accounts were active
        assert sink.write(RUN, chunks_of(older, 5)) == len(older)
        assert sink.kept_newer == NEXT_RUN.as_of
        pd.testing.assert_frame_equal(sink.read_table("current"), current)  # not one row went backwards
        history = sink.read_table("history")
        assert history.groupby("run_id").size().to_dict() == {NEXT_RUN.run_id: len(IDS), RUN.run_id: len(older)}
    finally:
        sink.close()
    replacing = open_sink(uri, Settings(), table_prefix=prefix, replace_newer=True)
    try:
        replacing.write(RUN, chunks_of(older, 5))
        assert replacing.kept_newer is None
        current = replacing.read_table("current")
        assert list(current["account_id"]) == older and set(current["run_id"]) == {RUN.run_id}
    finally:
        replacing.close()


@pytest.mark.parametrize("scheme", FILE_SCHEMES)
def test_file_run_on_an_older_snapshot_leaves_the_newer_file(scheme: str, tmp_path: Path) -> None:
    uri = file_uri(scheme, tmp_path)
    path = Path(uri.split(":", 1)[1])
    open_sink(uri, Settings()).write(NEXT_RUN, chunks_of(IDS, 5))
    before = path.read_bytes()
    sink = open_sink(uri, Settings())
    assert sink.write(RUN, chunks_of(IDS[:4], 5)) == 4  # scored and counted, not written
    assert sink.kept_newer == NEXT_RUN.as_of and path.read_bytes() == before
    same = open_sink(uri, Settings())
    same.write(NEXT_RUN, chunks_of(IDS, 9))  # the same snapshot again is not "older"
    assert same.kept_newer is None
    forced = open_sink(uri, Settings(), replace_newer=True)
    forced.write(RUN, chunks_of(IDS[:4], 5))
    assert forced.kept_newer is None and path.read_bytes() != before


def test_a_sql_sink_never_shows_its_password(tmp_path: Path) -> None:
    sink = open_sink("postgresql://crm:s3cret@db.internal:5432/crm", Settings())
    try:
        assert "s3cret" not in sink.uri and "db.internal:5432/crm" in sink.uri
    finally:
        sink.close()


def _held(chunks: Iterator[pd.DataFrame], barrier) -> Iterator[pd.DataFrame]:  # noqa: ANN001 - threading.Barrier
    """The chunks, then a wait until the other run has staged its rows too: both publish at the same moment."""
    yield from chunks
    barrier.wait(timeout=60)


def test_two_runs_at_once_leave_the_newest_snapshot_current(sql_sink_uri: tuple[str, str]) -> None:
    import threading

    uri, prefix = sql_sink_uri
    open_sink(uri, Settings(), table_prefix=prefix).write(RUN, chunks_of(IDS, 5))  # the tables exist
    for attempt in range(3):  # whichever of the two publishes first, the newer snapshot ends up current
        barrier, errors, sinks = threading.Barrier(2), [], {}

        def write(run: RunInfo, seed: int) -> None:
            sink = sinks[run.as_of] = open_sink(uri, Settings(), table_prefix=prefix)
            try:
                sink.write(run, _held(chunks_of(IDS, 5, seed=seed + attempt), barrier))
            except Exception as exc:  # noqa: BLE001 - collected and asserted below
                errors.append(exc)
            finally:
                sink.close()

        older = RunInfo(RUN.as_of, RUN.scored_at + dt.timedelta(hours=attempt + 1), {"expansion": str(attempt + 4)})
        threads = [threading.Thread(target=write, args=(r, s)) for r, s in ((NEXT_RUN, 1), (older, 2))]
        for t in threads:
            t.start()
        for t in threads:
            t.join(120)
        assert errors == []  # SQLite waits for the other's publish instead of "database is locked"
        check = open_sink(uri, Settings(), table_prefix=prefix)
        try:
            current = check.read_table("current")
        finally:
            check.close()
        assert set(pd.to_datetime(current["as_of"]).dt.date) == {NEXT_RUN.as_of}, f"attempt {attempt}"
        assert sinks[RUN.as_of].kept_newer in (None, NEXT_RUN.as_of)


@pytest.mark.parametrize("what", ["column", "primary key"])
def test_a_crm_table_missing_a_column_or_its_primary_key_gets_one_line_naming_them(what: str, tmp_path: Path) -> None:
    import sqlalchemy as sa

    from serving.sinks.sql import SinkSchemaError

    uri = f"sqlite:///{tmp_path / 'crm.db'}"
    open_sink(uri, Settings()).write(RUN, chunks_of(IDS, 5))
    engine = sa.create_engine(uri)
    with engine.begin() as conn:
        if what == "column":
            conn.exec_driver_sql("ALTER TABLE account_scores DROP COLUMN readiness_band")
        else:  # the table rebuilt without its key, as a hand-made copy would be
            conn.exec_driver_sql("CREATE TABLE copy AS SELECT * FROM account_scores")
            conn.exec_driver_sql("DROP TABLE account_scores")
            conn.exec_driver_sql("ALTER TABLE copy RENAME TO account_scores")
    engine.dispose()
    sink = open_sink(uri, Settings())
    expected = r"column\(s\) readiness_band missing" if what == "column" else r"primary key is \(none\), expected \(account_id\)"
    with pytest.raises(SinkSchemaError, match=f"CRM table account_scores: {expected}") as caught:
        sink.previous_scores(before=NEXT_RUN.as_of)
    assert "\n" not in str(caught.value)
    with pytest.raises(SinkSchemaError, match="CRM table account_scores"):
        sink.write(NEXT_RUN, chunks_of(IDS, 5))
    sink.close()


def test_the_sqlite_crm_file_is_the_owners_alone(tmp_path: Path) -> None:
    path = tmp_path / "home" / "crm.db"
    open_sink(f"sqlite:///{path}", Settings()).write(RUN, chunks_of(IDS, 5))
    assert path.stat().st_mode & 0o777 == 0o600
