"""Feature SQL compiled once: a plan made at some dates gives, at any others, the frame Ibis compiles afresh."""

from __future__ import annotations

import datetime as dt
import logging
import re
from pathlib import Path

import ibis
import pandas as pd
import pytest

from features.build import build_features, default_data_end, feature_table, label_frame, to_frame
from features.calendar import STAND_INS, Calendar
from features.config import Settings
from features.io import open_data
from features.plans import PLACEHOLDER, PlanError, PlanStore, compile_plan, filler, plan_key
from features.spine import month_ends

COMPANY_MONTHS = month_ends(dt.date(2025, 7, 1), dt.date(2026, 6, 30))
MESSY_MONTHS = month_ends(dt.date(2026, 1, 1), dt.date(2026, 11, 30))
WEEKLY = [dt.date(2026, 3, 4) + dt.timedelta(days=7 * i) for i in range(5)]


def _settings(home: Path, **kw: object) -> Settings:
    return Settings(_env_file=None, home=home, feature_plans=None, **kw)  # plans under the home, whatever the env says


def _reference(source, dates: list[dt.date], settings: Settings, data_end: dt.date, **kw: object) -> pd.DataFrame:  # noqa: ANN001
    """The frame straight from Ibis: the expression compiled for these very dates, no plan."""
    backend, tables = source.ibis(), source.tables()
    return to_frame(backend.to_pyarrow(feature_table(tables, dates, settings, data_end, **kw)).to_pandas())


def _plans(settings: Settings) -> list[Path]:
    return sorted(settings.plan_store.glob("*.json"))


@pytest.mark.parametrize("company, first, then, options", [
    ("generated_company", COMPANY_MONTHS[:6], COMPANY_MONTHS[-1:], {}),  # stored at 6 month ends, reused at the newest
    ("generated_company", COMPANY_MONTHS[-1:], COMPANY_MONTHS, {"labels": False}),  # one date, then twelve
    ("generated_company", COMPANY_MONTHS[2:4], COMPANY_MONTHS[-3:], {"signals": True, "raw_pass": True}),
    ("messy_company", MESSY_MONTHS[:4], MESSY_MONTHS[-2:], {"signals": True, "raw_pass": True}),
    ("messy_company", MESSY_MONTHS[-1:], WEEKLY, {}),  # month ends, then dates inside a month
    ("messy_company", WEEKLY, MESSY_MONTHS, {"labels": False}),
])
def test_a_reused_plan_gives_the_frame_ibis_compiles_for_those_dates(
    company: str, first: list[dt.date], then: list[dt.date], options: dict, request: pytest.FixtureRequest, tmp_path: Path,
) -> None:
    settings = _settings(tmp_path / "home")
    source = open_data(request.getfixturevalue(company))
    try:
        end = default_data_end(source.tables())
        made = build_features(source, first, settings, **options)  # compiles and stores the plan
        assert len(_plans(settings)) == 1
        pd.testing.assert_frame_equal(made, _reference(source, first, settings, end, **options))
        stored = _plans(settings)[0].stat().st_ino  # a compiled plan is written beside and renamed: a new inode
        # Other dates and an earlier data end (labels cut off sooner): the stored text, filled in
        reused = build_features(source, then, settings, then[-1] + dt.timedelta(days=40), **options)
        assert _plans(settings)[0].stat().st_ino == stored  # read, not compiled and stored again
        reference = _reference(source, then, settings, then[-1] + dt.timedelta(days=40), **options)
    finally:
        source.close()
    assert len(reused) > 100 and reused["as_of"].dt.date.nunique() == len(then)
    pd.testing.assert_frame_equal(reused, reference)


def test_the_filled_text_is_the_text_ibis_compiles_for_the_dates(generated_company: Path) -> None:
    """Statement by statement: no stand-in survives, and nothing but names and literals differs."""
    source = open_data(generated_company)
    try:
        backend, tables, settings = source.ibis(), source.tables(), Settings(_env_file=None)
        from features.build import calendar_feature_table

        def make(cal: Calendar, materialize):  # noqa: ANN001
            return calendar_feature_table(tables, cal, settings, materialize, signals=True)

        dates, end = COMPANY_MONTHS[3:7], dt.date(2026, 2, 14)
        plan = compile_plan(backend, make, Calendar.of(dates, end, PLACEHOLDER, stand_in=True))
        direct = compile_plan(backend, make, Calendar.of(dates, end, PLACEHOLDER))  # the real literals
        fill = filler(backend, Calendar.of(dates, end, PLACEHOLDER, stand_in=True), Calendar.of(dates, end, PLACEHOLDER))
    finally:
        source.close()
    assert len(plan.steps) == len(direct.steps) > 10
    for ours, theirs in zip([*plan.steps, plan.final], [*direct.steps, direct.final]):
        assert fill(ours) == theirs
        assert not any(str(d.year) in fill(ours) for d in STAND_INS.values())
    assert "2901" in "".join(plan.steps) and "2902" in "".join(plan.steps)  # the stand-ins are in the stored text
    # the constants: the window calendars' ages, named after their length
    assert plan.constants and all(re.fullmatch(r"_features_ages_\d+", name) for name in plan.constants)


def test_a_date_computed_from_a_stand_in_is_refused_not_filled_in(tiny_company) -> None:
    """A definition that shifts a literal in Python (here the newest snapshot less a week) cannot be planned."""
    source = open_data(tiny_company())
    try:
        backend, tables = source.ibis(), source.tables()

        def make(cal: Calendar, materialize):  # noqa: ANN001
            usage = tables["usage_daily"]
            return usage.filter(usage.date.cast("date") <= ibis.literal(cal.last - dt.timedelta(days=7), type="date"))

        dates, end = [dt.date(2025, 3, 31)], dt.date(2025, 7, 31)
        plan = compile_plan(backend, make, Calendar.of(dates, end, PLACEHOLDER, stand_in=True))
        fill = filler(backend, Calendar.of(dates, end, PLACEHOLDER, stand_in=True), Calendar.of(dates, end, "_x_"))
        with pytest.raises(PlanError, match=r"a stand-in date survived .*2902"):
            fill(plan.final)
        assert "MAKE_DATE(2025, 3, 31)" in fill(plan.final.replace("MAKE_DATE(2902, 3, 10)", "MAKE_DATE(2902, 3, 17)"))
    finally:
        source.close()


def test_labels_from_a_plan_equal_the_labels_ibis_compiles_for_those_dates(generated_company: Path, tmp_path: Path) -> None:
    settings = _settings(tmp_path / "home")
    source = open_data(generated_company)
    try:
        label_frame(source, COMPANY_MONTHS[:3], settings, COMPANY_MONTHS[5])  # compiles and stores the labels' plan
        labels = label_frame(source, COMPANY_MONTHS, settings, dt.date(2026, 4, 30))
        fresh = _reference(source, COMPANY_MONTHS, settings, dt.date(2026, 4, 30))  # no plan at all
    finally:
        source.close()
    assert len(_plans(settings)) == 1
    expected = fresh[labels.columns].sort_values(["as_of", "account_id"], ignore_index=True)
    pd.testing.assert_frame_equal(labels.sort_values(["as_of", "account_id"], ignore_index=True), expected)
    assert expected["expanded"].notna().sum() > 0 and expected["expanded"].isna().sum() > 0  # the data end cuts in


def test_two_homes_never_share_a_plan(tiny_company, tmp_path: Path) -> None:
    folder = tiny_company()
    one, two = _settings(tmp_path / "one"), _settings(tmp_path / "two")
    source = open_data(folder)
    try:
        build_features(source, [dt.date(2025, 3, 31)], one)
        assert [p.parent for p in _plans(one)] == [tmp_path / "one" / "snapshots" / "plans"]
        assert not (tmp_path / "two").exists()
        build_features(source, [dt.date(2025, 3, 31)], two)
    finally:
        source.close()
    assert [p.name for p in _plans(one)] == [p.name for p in _plans(two)]  # the same key, each home its own file
    assert {oct(p.stat().st_mode & 0o777) for p in _plans(one) + _plans(two)} == {oct(0o600)}


def test_a_changed_definition_setting_or_schema_gets_its_own_plan(tiny_company, tmp_path: Path) -> None:
    settings = _settings(tmp_path / "home")
    source = open_data(tiny_company())
    try:
        backend, tables = source.ibis(), source.tables()
        base = plan_key(backend, tables, settings, {"labels": True})
        assert plan_key(backend, tables, settings, {"labels": True}) == base
        assert plan_key(backend, tables, _settings(tmp_path / "elsewhere"), {"labels": True}) == base  # paths don't count
        assert plan_key(backend, tables, _settings(tmp_path / "home", quota_alert_pct=70.0), {"labels": True}) != base
        assert plan_key(backend, tables, _settings(tmp_path / "home", horizon_days=60), {"labels": True}) != base
        assert plan_key(backend, tables, settings, {"labels": False}) != base
        fewer = {name: t for name, t in tables.items() if name != "support_tickets"}
        assert plan_key(backend, fewer, settings, {"labels": True}) != base
        retyped = {**tables, "accounts": tables["accounts"].mutate(employees=tables["accounts"].employees.cast("float64"))}
        assert plan_key(backend, retyped, settings, {"labels": True}) != base
    finally:
        source.close()


def test_a_damaged_plan_is_compiled_again(tiny_company, tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    settings, dates = _settings(tmp_path / "home"), [dt.date(2025, 2, 28), dt.date(2025, 3, 31)]
    source = open_data(tiny_company())
    try:
        good = build_features(source, dates, settings)
        [path] = _plans(settings)
        path.write_text('{"steps": ["SELECT')
        with caplog.at_level(logging.WARNING, logger="features.plans"):
            again = build_features(source, dates, settings)
    finally:
        source.close()
    assert re.search(r"feature plan \w+ unreadable .*compiling the feature SQL again", caplog.text)
    pd.testing.assert_frame_equal(again, good)
    assert path.read_text().startswith('{"steps": ["') and len(path.read_text()) > 1000  # stored whole again


def test_rebuild_compiles_the_plan_afresh(tiny_company, tmp_path: Path) -> None:
    settings, dates = _settings(tmp_path / "home"), [dt.date(2025, 3, 31)]
    source = open_data(tiny_company())
    try:
        build_features(source, dates, settings)
        [path] = _plans(settings)
        path.write_text(path.read_text().replace("SELECT", "SELEKT", 1))  # a plan that would fail if it were read
        with pytest.raises(Exception, match="SELEKT"):
            build_features(source, dates, settings)
        rebuilt = build_features(source, dates, _settings(tmp_path / "home", rebuild_snapshots=True))
        assert "SELEKT" not in path.read_text()
    finally:
        source.close()
    assert len(rebuilt) == 4


def test_a_failed_build_leaves_no_temporary_table_or_calendar(tiny_company, tmp_path: Path) -> None:
    settings, dates = _settings(tmp_path / "home"), [dt.date(2025, 3, 31)]
    source = open_data(tiny_company())
    try:
        names = lambda: {r[0] for r in source.con.execute("SELECT table_name FROM duckdb_tables() UNION ALL "  # noqa: E731
                                                          "SELECT view_name FROM duckdb_views()").fetchall()}
        before = names()
        build_features(source, dates, settings)
        added = names() - before
        assert added and all(re.fullmatch(r"_features_ages_\d+", n) for n in added)  # the constants stay registered
        [path] = _plans(settings)
        text = path.read_text()
        path.write_text(text.replace('"final": "', '"final": "SELEKT ', 1))
        with pytest.raises(Exception, match="SELEKT"):
            build_features(source, dates, settings)
        assert names() == before | added
    finally:
        source.close()


def test_an_in_memory_table_without_a_fixed_name_cannot_be_planned(tiny_company) -> None:
    source = open_data(tiny_company())
    try:
        def make(cal: Calendar, materialize):  # noqa: ANN001
            extra = ibis.memtable({"as_of_day": [1]})
            return materialize(cal.snapshots.join(extra, "as_of_day"))

        with pytest.raises(PlanError, match="ibis_pandas_memtable_.* has no fixed name"):
            compile_plan(source.ibis(), make, Calendar.of([dt.date(2025, 3, 31)], dt.date(2025, 7, 31), PLACEHOLDER, True))
    finally:
        source.close()


def test_an_unwritable_plan_store_is_said_and_the_build_goes_on(tiny_company, tmp_path: Path,
                                                                caplog: pytest.LogCaptureFixture) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("not a folder")
    settings = Settings(_env_file=None, home=tmp_path / "home", feature_plans=blocker / "plans")
    source = open_data(tiny_company())
    try:
        with caplog.at_level(logging.WARNING, logger="features.plans"):
            frame = build_features(source, [dt.date(2025, 3, 31)], settings)
    finally:
        source.close()
    assert len(frame) == 4
    assert "feature plan not stored in" in caplog.text and "compiles the feature SQL again" in caplog.text
    assert PlanStore(blocker / "plans").load("anything") is None


def test_the_store_keeps_the_plans_used_last(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import os

    from features import plans

    monkeypatch.setattr(plans, "KEEP", 2)
    store, plan = PlanStore(tmp_path / "plans"), plans.Plan(["SELECT 1"], "SELECT 2", {})
    for i, key in enumerate(("a", "b")):
        store.save(key, plan)
        os.utime(tmp_path / "plans" / f"{key}.json", (1_000 + i, 1_000 + i))
    assert store.load("a") == plan  # read: now the one used last
    store.save("c", plan)
    assert sorted(p.stem for p in (tmp_path / "plans").glob("*.json")) == ["a", "c"]
