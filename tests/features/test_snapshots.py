"""The feature snapshot store: reuse equals a fresh build; a changed row or definition rebuilds exactly what it touches."""

from __future__ import annotations

import ast
import datetime as dt
from pathlib import Path

import pandas as pd
import pytest

from features.build import build_features
from features.config import Settings
from features.fingerprint import FEATURE_SETTINGS, NOT_DEFINITIONS, feature_modules
from features.io import open_data
from features.snapshots import SnapshotStore, history_features
from features.spine import month_ends

from conftest import COMPANY_AS_OF, TINY_USAGE_END, TINY_USAGE_START

TINY_DATES = month_ends(TINY_USAGE_START, TINY_USAGE_END)
CORRECTED = dt.date(2025, 2, 10)  # the day of the usage row corrected after the store was filled


def _history(folder: Path, settings: Settings, dates: list[dt.date], **kw: object) -> tuple[pd.DataFrame, list[str]]:
    heard: list[str] = []
    source = open_data(folder)
    try:
        return history_features(source, dates, settings, say=heard.append, **kw), heard
    finally:
        source.close()


def _fresh(folder: Path, settings: Settings, dates: list[dt.date], **kw: object) -> pd.DataFrame:
    source = open_data(folder)
    try:
        return build_features(source, dates, settings, **kw)
    finally:
        source.close()


def _stamps(settings: Settings, signals: bool = False) -> dict[dt.date, object]:
    store = SnapshotStore(settings.snapshot_store, signals)
    return {d: store.stamp(d) for d in TINY_DATES}


def test_reused_snapshots_equal_a_fresh_build(generated_company: Path, feature_frame: pd.DataFrame, tmp_path: Path):
    settings = Settings(_env_file=None, home=tmp_path / "home")
    source = open_data(generated_company)
    first = source.con.execute("SELECT min(date) FROM usage_daily").fetchone()[0]
    source.close()
    dates = month_ends(first, COMPANY_AS_OF)
    _, heard = _history(generated_company, settings, dates[:-1])  # last month's job: all but the newest month end
    assert heard == [f"feature snapshots ({settings.snapshot_store / 'features'}): 0 reused, {len(dates) - 1} rebuilt "
                     f"({len(dates) - 1} not stored)"]
    frame, heard = _history(generated_company, settings, dates)
    assert heard[0].endswith(f": {len(dates) - 1} reused, 1 rebuilt (1 not stored)")
    pd.testing.assert_frame_equal(frame, feature_frame)
    again, heard = _history(generated_company, settings, dates)
    assert heard[0].endswith(f": {len(dates)} reused, 0 rebuilt")
    pd.testing.assert_frame_equal(again, feature_frame)


def test_a_corrected_past_row_rebuilds_exactly_the_snapshots_after_it(tiny_company, tmp_path: Path):
    settings = Settings(_env_file=None, home=tmp_path / "home")
    _history(tiny_company(), settings, TINY_DATES)
    before = _stamps(settings)

    def correct(tables: dict[str, pd.DataFrame]) -> None:
        u = tables["usage_daily"]
        u.loc[(u["account_id"] == "A3") & (u["date"] == CORRECTED), "events"] = 500

    corrected = tiny_company(correct)
    frame, heard = _history(corrected, settings, TINY_DATES)
    after = _stamps(settings)
    touched = [d for d in TINY_DATES if d >= CORRECTED]
    assert [d for d in TINY_DATES if after[d] != before[d]] == touched
    assert heard[0].endswith(f": {len(TINY_DATES) - len(touched)} reused, {len(touched)} rebuilt "
                             f"({len(touched)} raw data changed in usage_daily)")
    pd.testing.assert_frame_equal(frame, _fresh(corrected, settings, TINY_DATES))


def test_a_changed_definition_rebuilds_every_snapshot(tiny_company, tmp_path: Path):
    home = tmp_path / "home"
    folder = tiny_company()
    _history(folder, Settings(_env_file=None, home=home), TINY_DATES)
    changed = Settings(_env_file=None, home=home, quota_alert_pct=50.0)  # a setting a feature definition reads
    frame, heard = _history(folder, changed, TINY_DATES)
    n = len(TINY_DATES)
    assert heard[0].endswith(f": 0 reused, {n} rebuilt ({n} definitions changed)")
    pd.testing.assert_frame_equal(frame, _fresh(folder, changed, TINY_DATES))


def test_the_rebuild_flag_rebuilds_every_snapshot(tiny_company, tmp_path: Path):
    folder, home = tiny_company(), tmp_path / "home"
    _history(folder, Settings(_env_file=None, home=home), TINY_DATES)
    _, heard = _history(folder, Settings(_env_file=None, home=home, rebuild_snapshots=True), TINY_DATES)
    assert heard[0].endswith(f": 0 reused, {len(TINY_DATES)} rebuilt ({len(TINY_DATES)} rebuild asked)")


def test_two_homes_never_share_a_store(tiny_company, tmp_path: Path):
    folder = tiny_company()
    one, two = (Settings(_env_file=None, home=tmp_path / name) for name in ("one", "two"))
    _history(folder, one, TINY_DATES)
    _, heard = _history(folder, two, TINY_DATES)
    assert heard[0].endswith(f": 0 reused, {len(TINY_DATES)} rebuilt ({len(TINY_DATES)} not stored)")
    assert one.snapshot_store.resolve().is_relative_to((tmp_path / "one").resolve())
    assert two.snapshot_store.resolve().is_relative_to((tmp_path / "two").resolve())


def test_an_unreadable_snapshot_is_rebuilt_and_signals_are_stored_apart(tiny_company, tmp_path: Path):
    folder, settings = tiny_company(), Settings(_env_file=None, home=tmp_path / "home")
    _history(folder, settings, TINY_DATES, signals=True)
    SnapshotStore(settings.snapshot_store, signals=True).path(TINY_DATES[2]).write_bytes(b"not parquet")
    frame, heard = _history(folder, settings, TINY_DATES, signals=True, snapshots_per_batch=2)
    assert heard[0].endswith(f": {len(TINY_DATES) - 1} reused, 1 rebuilt (1 not stored)")
    pd.testing.assert_frame_equal(frame, _fresh(folder, settings, TINY_DATES, signals=True))
    assert all(s is None for s in _stamps(settings).values())  # the frame without signals is another store


def test_the_fingerprint_covers_every_setting_the_features_read():
    modules = feature_modules()
    assert {"features.build", "features.usage", "features.spine", "features.registry"} <= modules.keys()
    read = set()
    for name, path in modules.items():
        if name in NOT_DEFINITIONS:
            continue
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Attribute) and isinstance(node.value, ast.Name) and node.value.id == "settings":
                read.add(node.attr)
    # horizon_days sets the labels alone, and labels are read afresh on every build, never stored
    assert read - {"horizon_days"} <= set(FEATURE_SETTINGS)
    assert set(FEATURE_SETTINGS) <= Settings.model_fields.keys()


def test_history_features_stays_within_the_home(tiny_company, tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    monkeypatch.chdir(tmp_path)
    settings = Settings(_env_file=None, home=tmp_path / "home")
    _history(tiny_company(), settings, TINY_DATES[:2])
    assert sorted(p.name for p in tmp_path.iterdir()) == ["home", "tiny0"]
